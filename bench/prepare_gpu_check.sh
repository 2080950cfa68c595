#!/usr/bin/env bash
# Run HERE (with network to PyPI and the CPU install) before bench/gpu_check.sh goes to a GPU
# machine that has no network and no hydra: exports the SmolLM2 tokenizer files and the missing
# pure-Python wheels (Python 3.12) into git-ignored folders that travel with the working tree:
#   .whl/             hydra-core, omegaconf, antlr4-python3-runtime (about 0.4 MB)
#   .gpu_check/tokenizer/   tokenizer.json, tokenizer_config.json, chat template (about 3.5 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p .whl .gpu_check/tokenizer
for pkg in hydra-core==1.3.2 omegaconf==2.3.0; do
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$pkg"
done
# antlr4-python3-runtime 4.9.3 (the version hydra 1.3 pins) is published as an sdist only; it is
# pure Python, so a wheel built here installs anywhere.
"$PY" -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3
PYTHONPATH=src "$PY" - <<'PY'
from transformers import AutoTokenizer
from darling.models.smollm2 import smollm2_path
AutoTokenizer.from_pretrained(smollm2_path()).save_pretrained(".gpu_check/tokenizer")
PY
du -sh .whl .gpu_check
