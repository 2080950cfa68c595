#!/usr/bin/env bash
# The reward comparison of docs/results.md, end to end: train the arms of sweeps/experiment.yaml
# (five rewards and a follow-up, three seeds each) on the built-in training prompts, evaluate
# every final policy and the base model on the held-out prompts (k = 16), then compare. Extra
# arguments go to the train or evaluate calls they belong to (see the case below), e.g.
#   bash sweeps/run_experiment.sh                    # the study (about 2.5 hours on 2 CPU cores)
#   bash sweeps/run_experiment.sh model=tiny trainer.max_steps=1 rollout.max_new_tokens=4 \
#        classifier=answer                           # a smoke test of the pipeline
# CONFIG=<name> runs another sweep of sweeps/ the same way (CONFIG=study2: study 2 of
# docs/results.md, with EXPERIMENT_DIR=multirun/study2 EVAL_K=32).
# Re-running the same command continues: runs resume their last checkpoint (ckpt_path=auto; a
# finished run ends at once) and evaluations whose metrics.json exists are not redone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CONFIG=${CONFIG:-experiment}
OUT=${EXPERIMENT_DIR:-multirun/experiment}
EVAL_K=${EVAL_K:-16}

train_args=() eval_args=()
for arg in "$@"; do
  case "$arg" in
    trainer.*|rollout.n_per_prompt=*|reward*|optim.*|data.prompts_per_step=*|hydra.*|seed=*)
      train_args+=("$arg") ;;
    eval.*) eval_args+=("$arg") ;;
    *) train_args+=("$arg"); eval_args+=("$arg") ;;
  esac
done

"$PY" train.py -m --config-dir sweeps --config-name "$CONFIG" "hydra.sweep.dir=$OUT" \
  ckpt_path=auto "${train_args[@]}"
for run in "$OUT"/*/; do
  [ -f "$run/config.yaml" ] || continue
  [ -f "$run/eval-k$EVAL_K/metrics.json" ] && continue
  "$PY" evaluate.py "ckpt=$run" "eval.k=$EVAL_K" "eval.out_dir=$run/eval-k$EVAL_K" "${eval_args[@]}"
done
[ -f "$OUT/base/metrics.json" ] ||
  "$PY" evaluate.py "eval.k=$EVAL_K" "eval.out_dir=$OUT/base" "${eval_args[@]}"
"$PY" evaluate.py "compare=[$OUT]" "eval.out_dir=$OUT/comparison" "baseline='grpo w=0'"
echo "comparison written to $OUT/comparison"
