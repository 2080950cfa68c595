#!/usr/bin/env bash
# Study 3's comparisons, run once all 58 evaluations exist (the plan keeps held-out metrics
# unread until then), from the pinned worktree's folder (metrics.json names each run's folder
# relative to it) with main's evaluate.py, which has signal_classifier (docs/results.md,
# execution notes). The same calls as sweeps/study3.sh makes, plus a temperature-1.0 comparison
# of the new runs alone, for the pass@k curves over runs that all have pass@k.
#   bash docs/results/study3/analyse.sh /work/darling-study3
set -euo pipefail
MAIN=$(cd "$(dirname "$0")/../../.." && pwd)
cd "${1:?the pinned worktree}"
PY=${PYTHON:-$MAIN/.venv/bin/python}
export PYTHONPATH=$MAIN/src
OUT=multirun/study3
runs=("$OUT"/smollm2_135m-*/)
missing=0
for run in "${runs[@]}"; do
  for name in t1.0 t0.6; do
    [ -f "${run%/}/eval-k32-$name/metrics.json" ] || { echo "missing: ${run%/}/eval-k32-$name"; missing=1; }
  done
done
for name in t1.0 t0.6; do
  [ -f "$OUT/base-$name/metrics.json" ] || { echo "missing: $OUT/base-$name"; missing=1; }
done
[ "${#runs[@]}" -eq 28 ] || { echo "expected 28 runs, found ${#runs[@]}"; missing=1; }
[ "$missing" -eq 0 ] || { echo "error: not every evaluation exists; nothing compared"; exit 2; }
compare() {  # name, out dir, extra arguments, then the folders
  local out=$1; shift 1
  local extra=() paths=()
  while [ "$1" != -- ]; do extra+=("$1"); shift; done; shift
  for p in "$@"; do paths+=("'$p'"); done
  "$PY" "$MAIN/evaluate.py" "compare=[$(IFS=,; echo "${paths[*]}")]" "eval.out_dir=$out" \
    "baseline='grpo w=0'" analysis=both signal_classifier=true "${extra[@]}"
}
hot=() cool=()
for run in "${runs[@]}"; do hot+=("${run%/}/eval-k32-t1.0"); cool+=("${run%/}/eval-k32-t0.6"); done
compare "$OUT/comparison-t1.0" collapsed_below=18 -- "${hot[@]}" "$OUT/base-t1.0" \
  "$MAIN/docs/results/study2/per_seed"
compare "$OUT/comparison-t0.6" -- "${cool[@]}" "$OUT/base-t0.6"
compare "$OUT/comparison-t1.0-new-runs" collapsed_below=18 -- "${hot[@]}" "$OUT/base-t1.0"
"$PY" "$MAIN/sweeps/study3_verdicts.py" "$OUT"
