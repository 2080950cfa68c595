"""A policy's full weights, LoRA folded in, one tensor at a time, without touching the policy."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator

import torch
from torch.distributed.tensor import DTensor, Shard

Gather = Callable[..., torch.Tensor | None]
"""``gather(tensor, dtype=None)``: the whole tensor (cast to ``dtype`` when given), or None."""


def full(tensor: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The whole tensor, in ``dtype`` if given: a sharded ``DTensor`` is all-gathered (a
    collective: every rank must call it, in the same order); a plain tensor is returned as it
    is."""
    whole = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
    return whole if dtype is None else whole.to(dtype)


def full_on_rank0(tensor: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor | None:
    """The whole tensor on the mesh's first rank, in ``dtype`` if given, None on the others (a
    collective). A DTensor sharded on dim 0 over a one-dimensional mesh (FSDP2's layout) is
    cast by each other rank (its own rows), then sent rank by rank (``send``/``recv``) straight
    into one buffer of ``dtype`` on the first rank, which casts its own rows as it copies them
    in: the other ranks never hold the full tensor, and that rank holds it once, never in the
    master dtype when another is asked (``full_tensor`` all-gathers it to every rank, through a
    padded buffer and its unpadded copy). Other layouts fall back to ``full``.
    """
    import torch.distributed as dist

    if not isinstance(tensor, DTensor):
        return full(tensor, dtype)
    mesh = tensor.device_mesh
    if mesh.ndim != 1 or tensor.placements != (Shard(0),):
        whole = full(tensor, dtype)
        return whole if mesh.get_local_rank() == 0 else None
    group, world = mesh.get_group(), mesh.size()
    rows = tensor.shape[0]
    chunk = -(-rows // world)  # torch.chunk's rows per rank; the last ranks may hold fewer
    local = tensor.to_local()
    if mesh.get_local_rank() != 0:
        if dtype is not None:
            local = local.to(dtype)
        if local.shape[0] < chunk:
            local = torch.cat([local, local.new_zeros((chunk - local.shape[0], *local.shape[1:]))])
        dist.send(local.contiguous(), dst=dist.get_global_rank(group, 0), group=group)
        return None
    # point-to-point into views of one buffer: gloo's gather would receive into a flat buffer of
    # its own and copy out of it, holding the full tensor twice; rank 0's own rows are cast as
    # they are copied in
    buffer = local.new_empty((chunk * world, *local.shape[1:]), dtype=dtype or local.dtype)
    parts = buffer.split(chunk)
    parts[0][: local.shape[0]].copy_(local)
    for r in range(1, world):
        dist.recv(parts[r], src=dist.get_global_rank(group, r), group=group)
    return buffer[:rows]


def _plain_state(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``(transformers name, tensor)`` of every weight of ``model``, adapters left out (a LoRA
    base layer's weight under the name it has without peft)."""
    if not hasattr(model, "get_base_model"):
        return list(model.state_dict().items())
    return [(name.replace(".base_layer", ""), tensor)
            for name, tensor in model.get_base_model().state_dict().items()
            if "lora_" not in name]


def merged_shapes(model: torch.nn.Module, skip: Collection[str] = ()
                  ) -> list[tuple[str, torch.Size]]:
    """The names and whole shapes of what ``merged_weights(model, skip=skip)`` yields, in its
    order, without gathering anything."""
    return [(name, tensor.shape) for name, tensor in _plain_state(model) if name not in skip]


@torch.no_grad()
def merged_weights(
    model: torch.nn.Module, gather: Gather = full, dtype: torch.dtype | None = None,
    skip: Collection[str] = (),
) -> Iterator[tuple[str, torch.Tensor | None]]:
    """Yield ``(name, tensor)`` for every weight of ``model`` under its plain transformers name,
    whole (sharded weights gathered one at a time, so at most one full tensor is in flight), with
    each active LoRA adapter folded in out of place: ``W' = W + (alpha / r) * B @ A``.

    peft's ``merge_adapter`` / ``unmerge_adapter`` would add and then subtract the delta in place;
    in bfloat16 that round trip does not restore ``W`` exactly, so calling it after every step would
    drift the frozen base weights, which are also the KL reference. Here the base is only read, and
    one delta at a time is materialised. A model without adapters yields its ``state_dict``.
    Under sharding every rank must consume the whole iterator. ``gather`` makes a sharded tensor
    whole (``full``: on every rank; ``full_on_rank0``: on rank 0, None elsewhere). ``dtype``:
    the dtype of what is yielded; a weight without an adapter is gathered straight into it, an
    adapted one is summed in its own dtype and cast after. ``skip``: names neither gathered nor
    yielded (a tied head, which is the embedding again).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    lora_layers = {
        f"{name}.weight": module
        for name, module in base.named_modules()
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer")
    }
    for name, tensor in _plain_state(model):
        if name in skip:
            continue
        layer = lora_layers.get(name)
        if layer is None or layer.disable_adapters or layer.merged:
            yield name, gather(tensor, dtype)
            continue
        tensor = gather(tensor)
        for adapter in layer.active_adapters:
            if adapter in layer.lora_A:
                delta = _delta(layer, adapter, gather)
                if tensor is not None:
                    tensor = tensor + delta.to(tensor.dtype)
        yield name, tensor if tensor is None or dtype is None else tensor.to(dtype)


def _delta(layer: torch.nn.Module, adapter: str, gather: Gather = full) -> torch.Tensor | None:
    """peft's ``get_delta_weight`` (``scaling * B @ A``, transposed for ``fan_in_fan_out``), on
    the gathered factors when they are sharded (None where ``gather`` gives nothing)."""
    a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
    if not isinstance(a, DTensor) and not isinstance(b, DTensor):
        return layer.get_delta_weight(adapter)
    b, a = gather(b), gather(a)
    if a is None or b is None:
        return None
    delta = (b @ a) * layer.scaling[adapter]
    return delta.T if getattr(layer, "fan_in_fan_out", False) else delta
