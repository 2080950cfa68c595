#!/usr/bin/env bash
# The reward comparison of docs/results.md, end to end: train the arms of sweeps/experiment.yaml
# (five rewards and a follow-up, three seeds each) on the built-in training prompts, evaluate
# every final policy and the base model on the held-out prompts (k = 16), then compare. Extra
# arguments go to the train or evaluate calls they belong to (see the case below), e.g.
#   bash sweeps/run_experiment.sh                    # the study (about 2.5 hours on 2 CPU cores)
#   bash sweeps/run_experiment.sh model=tiny trainer.max_steps=1 rollout.max_new_tokens=4 \
#        classifier=answer                           # a smoke test of the pipeline
# CONFIG=<name> runs another sweep of sweeps/ the same way (CONFIG=study2: study 2 of
# docs/results.md, with EXPERIMENT_DIR=multirun/study2 EVAL_K=32; study 3: sweeps/study3.sh).
# Optional settings (environment):
#   EVAL_SAMPLING="t1.0:1.0:1.0 t0.6:0.6:0.95"  evaluate every run and the base model once per
#       entry name:temperature:top_p, into <run>/eval-k<K>-<name> and <OUT>/base-<name>, and
#       compare each entry apart (<OUT>/comparison-<name>). Unset: one evaluation at the
#       config's sampling, <run>/eval-k<K>, <OUT>/base, <OUT>/comparison (as before).
#   POOL="t1.0=<path> ..."  metrics.json files under <path> join the comparison of that entry
#       (with EVAL_SAMPLING; e.g. study 2's per-seed results in study 3).
#   STUDY=<label>  written into each run's metrics.json (run.study), ANALYSIS=paired|unpaired|both
#       and COLLAPSED_BELOW=<distinct@k> go to the comparison (docs/evaluation.md); with
#       EVAL_SAMPLING, COLLAPSED_BELOW="<name>=<distinct@k> ..." sets it per entry (none: not
#       reported for that entry).
#   SIGNAL_CLASSIFIER=true  the comparison's training-signal table also judges every run's
#       logged rollouts by the default classifier (false merge and false split of one classifier
#       on every arm, whatever partition the arm trained with).
# Re-running the same command continues: runs resume their last checkpoint (ckpt_path=auto; a
# finished run ends at once) and evaluations whose metrics.json exists are not redone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CONFIG=${CONFIG:-experiment}
OUT=${EXPERIMENT_DIR:-multirun/experiment}
EVAL_K=${EVAL_K:-16}
EVAL_SAMPLING=${EVAL_SAMPLING:-}
POOL=${POOL:-}
ANALYSIS=${ANALYSIS:-paired}

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
compare_args=("baseline='grpo w=0'" "analysis=$ANALYSIS")
[ "${SIGNAL_CLASSIFIER:-false}" = true ] && compare_args+=("signal_classifier=true")
COLLAPSED_BELOW=${COLLAPSED_BELOW:-}
study_args=()
[ -n "${STUDY:-}" ] && study_args+=("study=$STUDY")

if [ -z "$EVAL_SAMPLING" ]; then
  for run in "$OUT"/*/; do
    [ -f "$run/config.yaml" ] || continue
    [ -f "$run/eval-k$EVAL_K/metrics.json" ] && continue
    "$PY" evaluate.py "ckpt=$run" "eval.k=$EVAL_K" "eval.out_dir=$run/eval-k$EVAL_K" \
      "${study_args[@]}" "${eval_args[@]}"
  done
  [ -f "$OUT/base/metrics.json" ] ||
    "$PY" evaluate.py "eval.k=$EVAL_K" "eval.out_dir=$OUT/base" "${eval_args[@]}"
  [ -n "$COLLAPSED_BELOW" ] && compare_args+=("collapsed_below=$COLLAPSED_BELOW")
  "$PY" evaluate.py "compare=[$OUT]" "eval.out_dir=$OUT/comparison" "${compare_args[@]}"
  echo "comparison written to $OUT/comparison"
  exit 0
fi

for setting in $EVAL_SAMPLING; do
  IFS=: read -r name temperature top_p <<<"$setting"
  sampling=("rollout.temperature=$temperature" "rollout.top_p=$top_p")
  paths=()
  for run in "$OUT"/*/; do
    [ -f "$run/config.yaml" ] || continue
    dir="${run%/}/eval-k$EVAL_K-$name"
    paths+=("'$dir'")
    [ -f "$dir/metrics.json" ] && continue
    "$PY" evaluate.py "ckpt=$run" "eval.k=$EVAL_K" "eval.out_dir=$dir" "${sampling[@]}" \
      "${study_args[@]}" "${eval_args[@]}"
  done
  [ -f "$OUT/base-$name/metrics.json" ] ||
    "$PY" evaluate.py "eval.k=$EVAL_K" "eval.out_dir=$OUT/base-$name" "${sampling[@]}" \
      "${eval_args[@]}"
  paths+=("'$OUT/base-$name'")
  for pool in $POOL; do
    [ "${pool%%=*}" = "$name" ] && paths+=("'${pool#*=}'")
  done
  list=$(IFS=,; echo "${paths[*]}")
  collapse=()
  for entry in $COLLAPSED_BELOW; do
    [ "${entry%%=*}" = "$name" ] && collapse+=("collapsed_below=${entry#*=}")
  done
  "$PY" evaluate.py "compare=[$list]" "eval.out_dir=$OUT/comparison-$name" \
    "${compare_args[@]}" "${collapse[@]}"
  echo "comparison at temperature $temperature, top_p $top_p written to $OUT/comparison-$name"
done
