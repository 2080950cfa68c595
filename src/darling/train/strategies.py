"""FSDP2 (``fully_shard``) through Lightning's ``ModelParallelStrategy`` (``trainer=fsdp``).

What is sharded: every parameter of the policy (one FSDP unit per decoder layer, plus the root
unit for embeddings, final norm and head), its gradients and its AdamW state, and, with
``optim.kl_coef > 0`` and no LoRA, the frozen reference the same way. Master weights are float32
whatever ``model.dtype`` loads (a bf16 checkpoint is upcast shard by shard after sharding, so no
rank ever holds a full float32 copy); ``param_dtype`` is only the compute dtype of the all-gathered
weights (``MixedPrecisionPolicy``), gradients are reduced in ``reduce_dtype``.

Why not ``precision=bf16-true``: with lr 1e-6 most AdamW updates ``lr * m / sqrt(v)`` are below
half a bf16 ulp of the weight (2^-8 relative) and round to zero, and Adam's moments would be bf16
too. Lightning's precision stays ``32-true``; the policy here does the casting.

Loading: every rank builds the policy on the meta device and shards it; a checkpoint on disk
(safetensors) is then read by every rank for its own rows only (``fill_shards_from_files``), and
weights built in code are sent from rank 0's one copy (``fill_shards``), one unit at a time
(docs/training.md, "Scale").

Activation checkpointing is ``model.gradient_checkpointing`` (transformers' own, non-reentrant),
applied once; no wrapper is added here, so parameter names stay the transformers names that
checkpoints, ``SavePolicy`` and vLLM's ``load_weights`` use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import ModelParallelStrategy

from darling.errors import ConfigError
from darling.models.loading import DTYPES, transformers_model
from darling.train.checkpoint_io import hidden_sibling, remove_path

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ShardingSpec:
    """How ``shard_model`` wraps a model (the ``trainer.strategy`` fields of ``trainer=fsdp``)."""

    param_dtype: str | None = "bfloat16"
    """Compute dtype of the gathered weights; None = the float32 master weights themselves."""
    reduce_dtype: str | None = "float32"
    """Dtype of the gradient reduce-scatter; None = ``param_dtype``."""
    reshard_after_forward: bool = True
    """Free the gathered weights after each layer's forward (ZeRO-3); False keeps them until the
    backward (ZeRO-2: more memory, one all-gather less per layer)."""
    cpu_offload: bool = False
    """FSDP2's ``CPUOffloadPolicy``: the sharded master weights, gradients and AdamW state live
    in (pinned) host memory, the optimiser steps on the CPU; each unit is copied to the device
    when it is gathered. The knob the memory plan names when the training state does not fit."""


class FSDP2Strategy(ModelParallelStrategy):
    """``ModelParallelStrategy`` with a one-dimensional mesh: data parallel over every process,
    no tensor parallelism. ``DarlingModule.configure_model`` shards with ``self.sharding``.

    Sharded checkpoints are directories (one file per rank plus ``meta.pt``); a save is atomic:
    the ranks write into a temporary sibling, then rank 0 renames it over the target, so a kill
    during a save leaves the previous checkpoint intact.
    """

    def __init__(self, sharding: ShardingSpec, **kwargs: Any):
        super().__init__(tensor_parallel_size=1, save_distributed_checkpoint=True, **kwargs)
        self.sharding = sharding

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: Any, storage_options=None):
        target = Path(self.broadcast(str(filepath)))
        partial, old = hidden_sibling(target, "partial"), hidden_sibling(target, "old")
        if self.global_rank == 0:
            for leftover in (partial, old):
                remove_path(leftover)
        self.barrier()
        super().save_checkpoint(checkpoint, partial, storage_options)
        self.barrier()
        if self.global_rank == 0:
            if target.exists():
                target.rename(old)
            partial.rename(target)
            remove_path(old)
        self.barrier()


def fsdp2(
    param_dtype: str | None = "bfloat16",
    reduce_dtype: str | None = "float32",
    reshard_after_forward: bool = True,
    cpu_offload: bool = False,
) -> FSDP2Strategy:
    """The ``trainer.strategy`` of ``trainer=fsdp`` (see ``ShardingSpec`` for the fields)."""
    for name, value in (("param_dtype", param_dtype), ("reduce_dtype", reduce_dtype)):
        if value is not None and value not in DTYPES:
            raise ConfigError(
                f"trainer.strategy.{name}={value!r}: choose one of {sorted(DTYPES)} or null"
            )
    return FSDP2Strategy(
        ShardingSpec(param_dtype, reduce_dtype, reshard_after_forward, cpu_offload)
    )


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The module instances of ``model`` whose class is named in transformers'
    ``_no_split_modules`` (the decoder layer of Llama, Qwen2, Qwen3, ...), in model order."""
    base = transformers_model(model)
    names = set(getattr(base, "_no_split_modules", None) or ())
    # after fully_shard a layer's class is FSDP<name>, a subclass of the original
    layers = [m for m in base.modules() if names & {c.__name__ for c in type(m).__mro__}]
    if not layers:
        raise ValueError(
            f"{type(base).__name__} names no decoder layer class in _no_split_modules "
            f"({sorted(names)}); trainer=fsdp cannot tell which modules to shard"
        )
    return layers


def shard_model(model: torch.nn.Module, mesh: Any, spec: ShardingSpec) -> None:
    """``fully_shard`` each decoder layer, then the root, over ``mesh``, and make the sharded
    master weights float32 (in place; a model that is already sharded is left as it is)."""
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    # A LoRA policy's root is the wrapped transformers model: peft's generate calls that model's
    # forward directly, so a root hook on the peft wrapper would never gather the embedding.
    root = transformers_model(model)
    if isinstance(root, FSDPModule):
        return
    policy = MixedPrecisionPolicy(
        param_dtype=DTYPES[spec.param_dtype] if spec.param_dtype else None,
        reduce_dtype=DTYPES[spec.reduce_dtype] if spec.reduce_dtype else None,
    )
    options = {"mesh": mesh, "mp_policy": policy}
    if spec.cpu_offload:
        from torch.distributed.fsdp import CPUOffloadPolicy

        options["offload_policy"] = CPUOffloadPolicy(pin_memory=torch.cuda.is_available())
    for layer in decoder_layers(model):
        fully_shard(layer, reshard_after_forward=spec.reshard_after_forward, **options)
    fully_shard(root, reshard_after_forward=spec.reshard_after_forward, **options)
    model.to(torch.float32)  # each rank upcasts its own shard only
    # transformers' generate keeps every rank stepping until all ranks are done (each step is a
    # collective all-gather); it looks for this flag, which its own FSDP2 helper sets.
    for m in {model, root}:
        m._is_fsdp_managed_module = True


def is_on_meta(model: torch.nn.Module) -> bool:
    """Whether any parameter of ``model`` is on the meta device (a structure to be filled)."""
    return any(_local(p).is_meta for p in model.parameters())


@torch.no_grad()
def fill_shards(models: Sequence[torch.nn.Module], source: dict[str, torch.Tensor]) -> None:
    """Fill sharded models built on the meta device from rank 0's full weights, one FSDP unit at
    a time: load once, shard everywhere.

    ``models`` are policies that ``shard_model`` sharded (the same architecture: the policy and
    its reference share one read of the weights); ``source`` is, on rank 0, the full state dict
    of the model's transformers root (``transformers_model(m).state_dict()`` of a loaded model,
    LoRA adapters included), and ``{}`` on every other rank. Every rank must call this (each
    unit is a collective). For the root's own weights (embeddings, final norm, head), then for
    each decoder layer, rank 0 pops that unit's tensors and
    ``torch.distributed.checkpoint.state_dict.set_model_state_dict`` with
    ``full_state_dict=True, broadcast_from_rank0=True`` broadcasts them one by one; each rank
    keeps only its slice of each. Only the unit being filled is materialised, so a rank holds its
    shards plus one full tensor in flight, and rank 0 additionally what is left of ``source``;
    the unit is then cast back to the dtype the sharded model had (the float32 master weights).
    Tied weights stay one parameter. A weight that ``source`` lacks, or one it has that the
    model lacks, is an error on every rank before anything is sent.
    """
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
    roots = [transformers_model(m) for m in models]
    dtype = next(roots[0].parameters()).dtype
    expected = set(roots[0].state_dict())
    problems = [None]
    if dist.get_rank() == 0:
        missing, unexpected = sorted(expected - set(source)), sorted(set(source) - expected)
        problems = [(missing, unexpected) if missing or unexpected else None]
    dist.broadcast_object_list(problems, src=0)
    if problems[0] is not None:
        missing, unexpected = problems[0]
        raise ValueError(
            f"the loaded weights do not fit the model built from its config: missing "
            f"{missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
        )
    units = [_layer_prefixes(root) for root in roots]
    prefixes = tuple(prefix for prefix, _ in units[0])
    # the root's own weights first (embeddings, head, final norm: the largest unit), while no
    # layer holds memory yet; rank 0's copy of them is freed before they are cast
    rest = {k: source.pop(k) for k in list(source) if not k.startswith(prefixes)}
    for root in roots:
        aliases = _aliases(root)
        set_model_state_dict(root, dict(rest), options=options)
        _retie(root, aliases)
    del rest
    for root in roots:
        root.to(dtype)  # the layers are still on the meta device: nothing else is touched
    for position, (prefix, _) in enumerate(units[0]):
        part = {k.removeprefix(prefix): source.pop(k) for k in sorted(source)
                if k.startswith(prefix)}
        for unit in units:
            set_model_state_dict(unit[position][1], dict(part), options=options)
        del part
        for unit in units:
            unit[position][1].to(dtype)
    for root in roots:
        _check_filled(root)


@torch.no_grad()
def fill_shards_from_files(models: Sequence[torch.nn.Module], directory: str | Path) -> None:
    """Fill sharded models built on the meta device from the safetensors checkpoint in
    ``directory``, each rank reading only the rows it holds: load once, shard everywhere, with
    no rank ever holding a full copy.

    ``models`` are policies that ``shard_model`` sharded (FSDP2 shards every parameter on dim 0
    over a one-dimensional mesh, ``torch.chunk``'s split: rank ``r`` of ``R`` holds rows
    ``[r c, min((r + 1) c, rows))`` with ``c = ceil(rows / R)``). For each FSDP unit (the root's
    own weights, then each decoder layer), every rank reads its rows of each weight straight
    from the file (``StoredTensor.read_rows``: plain reads, no memory map), casts them to the
    dtype of the sharded parameter (the float32 master weights) and assigns them. A rank holds
    its shards plus one slice in flight, whatever the model's size. Parameters that are already
    real (LoRA adapters, initialised on every rank from the seed) are kept; a LoRA base layer's
    weight is read under its transformers name (``q_proj.base_layer.weight`` from
    ``q_proj.weight``); tied weights stay one parameter. A weight the checkpoint lacks, or one
    of another shape, is an error on every rank before anything is read. No collective is
    needed; every rank reads the same files (a shared filesystem across nodes).
    """
    from torch.distributed.tensor import DTensor, Shard

    from darling.models.safetensors_shards import stored_tensors

    stored = stored_tensors(directory)
    roots = [transformers_model(m) for m in models]
    for root in roots:
        wanted = {n: p for n, p in root.named_parameters() if _local(p).is_meta}
        names = {n: n.replace(".base_layer.", ".") for n in wanted}
        missing = sorted(n for n, f in names.items() if f not in stored)
        wrong = sorted(n for n, f in names.items()
                       if f in stored and tuple(wanted[n].shape) != stored[f].shape)
        if missing or wrong:
            raise ValueError(
                f"the checkpoint in {directory} does not fit the model built from its config: "
                f"missing {missing[:5]} ({len(missing)}), other shape {wrong[:5]} ({len(wrong)})"
            )
        aliases = _aliases(root)
        units = [("", root), *_layer_prefixes(root)]
        prefixes = tuple(prefix for prefix, _ in units[1:])
        for prefix, unit in units:
            part = {}
            for name in [n for n in wanted if n.startswith(prefix)
                         and (prefix or not n.startswith(prefixes))]:
                param = wanted[name]
                if not isinstance(param, DTensor) or param.placements != (Shard(0),):
                    raise ValueError(f"{name}: expected FSDP2's dim-0 shard, got {param!r}")
                mesh = param.device_mesh
                rows = param.shape[0]
                chunk = -(-rows // mesh.size())
                start = mesh.get_local_rank() * chunk
                local = stored[names[name]].read_rows(start, start + chunk).to(param.dtype)
                part[name.removeprefix(prefix)] = DTensor.from_local(
                    local, mesh, param.placements, run_check=False, shape=param.shape,
                    stride=param.stride(),
                )
            unit.load_state_dict(part, strict=False, assign=True)
        _retie(root, aliases)
        _check_filled(root)


def _layer_prefixes(root: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``(state-dict prefix, module)`` of each decoder layer of ``root``, in model order."""
    names = {id(m): name for name, m in root.named_modules()}
    return [(names[id(layer)] + ".", layer) for layer in decoder_layers(root)]


def _retie(root: torch.nn.Module, aliases: list[tuple[str, str]]) -> None:
    """Point each alias (``_aliases``, taken before assignment) at its parameter again: loading
    with assignment gave each name a parameter of its own."""
    for alias, name in aliases:
        owner, _, attr = alias.rpartition(".")
        setattr(root.get_submodule(owner), attr, root.get_parameter(name))


def _check_filled(root: torch.nn.Module) -> None:
    """No parameter of ``root`` is left on the meta device."""
    left = [n for n, p in root.named_parameters() if _local(p).is_meta]
    if left:
        raise RuntimeError(f"parameters left unfilled on the meta device: {left[:5]}")


def _aliases(root: torch.nn.Module) -> list[tuple[str, str]]:
    """``(alias, name)`` for every parameter registered under a second name (a tied head)."""
    first: dict[int, str] = {}
    aliases = []
    for name, p in root.named_parameters(remove_duplicate=False):
        if id(p) in first:
            aliases.append((name, first[id(p)]))
        else:
            first[id(p)] = name
    return aliases


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


