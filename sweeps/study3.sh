#!/usr/bin/env bash
# Study 3 of docs/results.md, end to end and resumable (run the same command again to continue):
# train grpo and darling_answer, seeds 6-19, in study 2's regime (sweeps/study3.yaml); evaluate
# every final policy and the base model on the held-out prompts at k = 32, once at temperature
# 1.0 (eval-k32-t1.0) and once at temperature 0.6, top_p 0.95 (eval-k32-t0.6); compare each
# temperature apart, paired and unpaired (Welch and permutation), with study 2's per-seed
# results (docs/results/study2/per_seed, temperature 1.0 only) pooled into the temperature-1.0
# comparison as study 2, then prints the endpoint table with the plan's verdicts
# (sweeps/study3_verdicts.py). Extra arguments go to sweeps/run_experiment.sh (e.g. a tiny smoke test:
# model=tiny trainer.max_steps=1 ... , see tests/test_sweeps.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONFIG=study3 EXPERIMENT_DIR=${EXPERIMENT_DIR:-multirun/study3} EVAL_K=${EVAL_K:-32}
# collapsed: distinct@32 below 18 at temperature 1.0 (the plan's definition; not at 0.6)
export STUDY=3 ANALYSIS=both COLLAPSED_BELOW=t1.0=18
# the default classifier's false merge and false split on both arms' training rollouts
export SIGNAL_CLASSIFIER=true
export EVAL_SAMPLING="t1.0:1.0:1.0 t0.6:0.6:0.95"
export POOL=${POOL-t1.0=docs/results/study2/per_seed}
bash sweeps/run_experiment.sh "$@"
# the endpoint table with each verdict by the plan's rules (verdicts.json beside the comparisons)
"${PYTHON:-.venv/bin/python}" sweeps/study3_verdicts.py "$EXPERIMENT_DIR"
