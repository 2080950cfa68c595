"""A policy's full weights, LoRA folded in, one tensor at a time, without touching the policy."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.distributed.tensor import DTensor


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor: a sharded ``DTensor`` is all-gathered (a collective: every rank must
    call it, in the same order); a plain tensor is returned as it is."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


@torch.no_grad()
def merged_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(name, tensor)`` for every weight of ``model`` under its plain transformers name,
    whole (sharded weights gathered one at a time, so at most one full tensor is in flight), with
    each active LoRA adapter folded in out of place: ``W' = W + (alpha / r) * B @ A``.

    peft's ``merge_adapter`` / ``unmerge_adapter`` would add and then subtract the delta in place;
    in bfloat16 that round trip does not restore ``W`` exactly, so calling it after every step would
    drift the frozen base weights, which are also the KL reference. Here the base is only read, and
    one delta at a time is materialised. A model without adapters yields its ``state_dict``.
    Under sharding every rank must consume the whole iterator.
    """
    if not hasattr(model, "get_base_model"):
        for name, tensor in model.state_dict().items():
            yield name, full(tensor)
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
        tensor = full(tensor)
        layer = lora_layers.get(name)
        if layer is not None and not layer.disable_adapters and not layer.merged:
            for adapter in layer.active_adapters:
                if adapter in layer.lora_A:
                    tensor = tensor + _delta(layer, adapter).to(tensor.dtype)
        yield name, tensor


def _delta(layer: torch.nn.Module, adapter: str) -> torch.Tensor:
    """peft's ``get_delta_weight`` (``scaling * B @ A``, transposed for ``fan_in_fan_out``), on
    the gathered factors when they are sharded."""
    a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
    if not isinstance(a, DTensor) and not isinstance(b, DTensor):
        return layer.get_delta_weight(adapter)
    delta = (full(b) @ full(a)) * layer.scaling[adapter]
    return delta.T if getattr(layer, "fan_in_fan_out", False) else delta
