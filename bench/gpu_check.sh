#!/usr/bin/env bash
# One command for a single-GPU machine without network (PyTorch, Lightning, transformers, peft;
# no hydra): an FSDP2 train.py run and HF rollout throughput on a Qwen2.5-0.5B-shaped model
# built in code (random weights, bf16 compute), printed as JSON (also written to $OUT/ when set).
# Prepare the wheels and tokenizer first, where there is network: bash bench/prepare_gpu_check.sh
#
#   bash bench/gpu_check.sh          # on the GPU machine, under 8 minutes
#   bash bench/gpu_check.sh --cpu    # the same script end to end on the CPU, tiny model, seconds
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && ! "$PY" -c "import hydra" 2>/dev/null; then
  "$PY" -m pip install --quiet --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}
tokenizer=$PWD/.gpu_check/tokenizer
[ -d "$tokenizer" ] || tokenizer=null   # SmolLM2's, from its wheel (this machine)
work=$(mktemp -d /tmp/gpu_check.XXXXXX)
out=${OUT:-$work}
mkdir -p "$out"
if [ "${1:-}" = "--cpu" ]; then
  model=(model=tiny); device=cpu
  trainer=(trainer.accelerator=cpu trainer.devices=1 trainer.strategy.param_dtype=null)
  sampling=(rollout.n_per_prompt=2 rollout.max_new_tokens=8 data.prompts_per_step=1)
  bench=(--prompts 2 --repeats 1)
else
  model=(model=qwen2_5_0_5b_shape "model.path=$tokenizer"); device=cuda
  trainer=(trainer.accelerator=gpu trainer.devices=1)
  sampling=(rollout.n_per_prompt=8 rollout.max_new_tokens=256 data.prompts_per_step=4)
  bench=(--prompts 16 --repeats 3)
fi
# train.py in this process (one device: no child processes), then its peak GPU memory
cat > "$work/train_peak.py" <<'PY'
import json, runpy, sys
import torch
peak_file = sys.argv.pop(1)
sys.argv[0] = "train.py"
try:
    runpy.run_path("train.py", run_name="__main__")
finally:
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    open(peak_file, "w").write(json.dumps(peak))
PY
# classifier=answer and a callable quality: nothing that needs MiniLM or math-verify
"$PY" "$work/train_peak.py" "$work/train_peak_gib.txt" "${model[@]}" trainer=fsdp "${trainer[@]}" rollout=hf "${sampling[@]}" \
  classifier=answer quality=callable quality.path=tests.helpers:length_quality \
  trainer.max_steps=3 trainer.checkpoint_every_n_steps=100 trainer.enable_progress_bar=false \
  optim.micro_batch_size=8 log_rollouts=false "hydra.run.dir=$work/train" > "$work/train.log" 2>&1 \
  || { tail -40 "$work/train.log"; exit 1; }
"$PY" bench/rollout_throughput.py --engines hf --device "$device" "${bench[@]}" \
  --out "$work/throughput.json" "${model[@]}" "${sampling[@]}" > "$work/throughput.log" 2>&1 \
  || { tail -40 "$work/throughput.log"; exit 1; }
"$PY" - "$work" "$out" <<'PY'
import csv, json, statistics, sys
from pathlib import Path
import torch
work, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = list(csv.DictReader((work / "train" / "metrics.csv").open()))
throughput = json.loads((work / "throughput.json").read_text())
step = [float(r["time/generate"]) + float(r["time/quality"]) + float(r["time/partition"])
        + float(r["time/update"]) + float(r["time/sync"]) for r in rows]
result = {
    "device": throughput["device"], "torch": torch.__version__,
    "train_steps": len(rows),
    "train_step_s_median": statistics.median(step),
    "train_update_s_median": statistics.median(float(r["time/update"]) for r in rows),
    "train_generate_tokens_per_s_median": statistics.median(
        float(r["rollout/tokens_per_s"]) for r in rows),
    "train_peak_gpu_gib": json.loads((work / "train_peak_gib.txt").read_text()),
    "rollout_hf": throughput["results"][0],
}
(out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
PY
