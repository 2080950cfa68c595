"""A LoRA policy's weights with the adapters folded in, computed without touching the policy."""

from __future__ import annotations

from collections.abc import Iterator

import torch


@torch.no_grad()
def merged_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(name, tensor)`` for every weight of ``model`` under its plain transformers name,
    with each active LoRA adapter folded in out of place: ``W' = W + (alpha / r) * B @ A``.

    peft's ``merge_adapter`` / ``unmerge_adapter`` would add and then subtract the delta in place;
    in bfloat16 that round trip does not restore ``W`` exactly, so calling it after every step would
    drift the frozen base weights, which are also the KL reference. Here the base is only read, and
    one delta at a time is materialised. A model without adapters yields its ``state_dict``.
    """
    if not hasattr(model, "get_base_model"):
        yield from model.state_dict().items()
        return
    base = model.get_base_model()
    lora_layers = {
        f"{name}.weight": module
        for name, module in base.named_modules()
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer")
    }
    for name, tensor in base.state_dict().items():
        if "lora_" in name:
            continue
        name = name.replace(".base_layer", "")
        layer = lora_layers.get(name)
        if layer is not None and not layer.disable_adapters and not layer.merged:
            for adapter in layer.active_adapters:
                if adapter in layer.lora_A:
                    tensor = tensor + layer.get_delta_weight(adapter).to(tensor.dtype)
        yield name, tensor
