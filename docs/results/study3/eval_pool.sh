#!/usr/bin/env bash
# Study 3's evaluations, two at a time: the same evaluate.py calls as sweeps/run_experiment.sh
# under sweeps/study3.sh (EVAL_K=32, STUDY=3, EVAL_SAMPLING="t1.0:1.0:1.0 t0.6:0.6:0.95"), run
# from the pinned worktree, started only when fewer than two training or evaluation processes
# run (one process per core, each single-threaded). A run is evaluated once its training has
# saved the final policy. Each evaluation's own output goes to its own log file (not read until
# all are done: the plan keeps held-out metrics unread); this pool logs only what ran and its rc.
set -u
cd /work/darling-study3
OUT=multirun/study3 PY=/work/main/.venv/bin/python CLAIMS=/work/study3-claims
export PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$CLAIMS"
next_task() {  # prints "<out dir> <ckpt or -> <temperature> <top_p>" of an unclaimed evaluation
  for setting in t1.0:1.0:1.0 t0.6:0.6:0.95; do
    IFS=: read -r name temperature top_p <<<"$setting"
    for run in "$OUT"/smollm2_135m-*/; do
      run=${run%/}
      grep -q "saved the trained policy" "$run/train.log" 2>/dev/null || continue
      dir="$run/eval-k32-$name"
      [ -f "$dir/metrics.json" ] || [ -d "$CLAIMS/${dir//\//_}" ] && continue
      echo "$dir $run $temperature $top_p"; return
    done
    dir="$OUT/base-$name"
    [ -f "$dir/metrics.json" ] || [ -d "$CLAIMS/${dir//\//_}" ] && continue
    echo "$dir - $temperature $top_p"; return
  done
}
while true; do
  busy=$(pgrep -fc "python (train|evaluate)\.py")
  if [ "$busy" -lt 2 ]; then
    task=$(next_task)
    if [ -z "$task" ]; then
      [ "$busy" -eq 0 ] && { echo "$(date -u +%T) nothing left"; exit 0; }
    else
      read -r dir ckpt temperature top_p <<<"$task"
      mkdir "$CLAIMS/${dir//\//_}"
      args=("eval.k=32" "eval.out_dir=$dir" "rollout.temperature=$temperature" "rollout.top_p=$top_p")
      [ "$ckpt" = - ] || args=("ckpt=$ckpt" "${args[@]}" "study=3")
      echo "$(date -u +%T) start $dir"
      ( start=$(date +%s); "$PY" evaluate.py "${args[@]}" > "$CLAIMS/${dir//\//_}/log" 2>&1
        echo "$(date -u +%T) done $dir rc=$? $(( $(date +%s) - start ))s" ) &
      sleep 5; continue
    fi
  fi
  sleep 20
done
