"""Distributed strategies that need code, not just config."""

from __future__ import annotations

from typing import Any


def fsdp(
    layer_class_names: tuple[str, ...] = (
        "LlamaDecoderLayer", "Qwen2DecoderLayer", "Qwen3DecoderLayer"
    ),
    sharding_strategy: str = "FULL_SHARD",
    activation_checkpointing: bool = True,
    cpu_offload: bool = False,
    state_dict_type: str = "sharded",
) -> Any:
    """Lightning ``FSDPStrategy`` wrapping each decoder layer (and checkpointing its activations).

    Layer classes are looked up by name in transformers so one config serves Llama and Qwen.
    """
    import transformers
    from lightning.pytorch.strategies import FSDPStrategy

    layers = set()
    for name in layer_class_names:
        for module in ("llama", "qwen2", "qwen3"):
            cls = getattr(getattr(transformers.models, module, None), name, None) or getattr(
                getattr(getattr(transformers.models, module, None), f"modeling_{module}", None),
                name,
                None,
            )
            if cls is not None:
                layers.add(cls)
    return FSDPStrategy(
        auto_wrap_policy=layers,
        activation_checkpointing_policy=layers if activation_checkpointing else None,
        sharding_strategy=sharding_strategy,
        cpu_offload=cpu_offload,
        state_dict_type=state_dict_type,
    )
