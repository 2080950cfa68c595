"""Training checkpoints, read without a process group: a single ``.ckpt`` file (one process, DDP)
or a sharded directory (``trainer=fsdp``: torch.distributed.checkpoint files plus ``meta.pt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from darling.errors import MissingPathError

METADATA_FILE = "meta.pt"
"""Lightning's file of everything but the weights and optimiser state in a sharded checkpoint."""
WEIGHTS_PREFIX = "state_dict."
"""Key prefix of the module weights in the sharded files (``state_dict.policy.model...``)."""


def is_sharded_checkpoint(path: str | Path) -> bool:
    """A directory that Lightning's ``ModelParallelStrategy`` wrote (it holds ``meta.pt``)."""
    return Path(path).is_dir() and (Path(path) / METADATA_FILE).is_file()


def run_dir_of(ckpt: str | Path) -> Path:
    """The run directory behind ``ckpt``: a run dir itself, the parent of its ``policy/``, or the
    run dir of a checkpoint file (``<run>/checkpoints/x.ckpt`` or ``<run>/x.ckpt``)."""
    path = Path(ckpt)
    if path.is_file() or (path / METADATA_FILE).is_file():  # a file or a sharded checkpoint dir
        return path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path.parent if path.name == "policy" else path


def load_checkpoint(path: str | Path, prefix: str = "policy.") -> dict[str, Any]:
    """The checkpoint at ``path`` as Lightning's single-file layout: ``{"state_dict": {name: full
    tensor}, "darling": ..., ...}``, with only the weights whose name starts with ``prefix``.

    A sharded directory is read with ``torch.distributed.checkpoint`` in a single process
    (``no_dist``): each weight is assembled from every rank's shard into one CPU tensor; the
    optimiser state is not read.
    """
    path = Path(path)
    if path.is_file():
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        checkpoint["state_dict"] = {
            k: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
        }
        return checkpoint
    if not is_sharded_checkpoint(path):
        raise MissingPathError(
            f"{path} is neither a checkpoint file nor a sharded checkpoint directory (with "
            f"{METADATA_FILE})"
        )
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    metadata = dcp.FileSystemReader(str(path)).read_metadata()
    weights = {
        key: torch.empty(meta.size, dtype=meta.properties.dtype)
        for key, meta in metadata.state_dict_metadata.items()
        if key.startswith(WEIGHTS_PREFIX + prefix) and isinstance(meta, TensorStorageMetadata)
    }
    dcp.load(weights, checkpoint_id=str(path), no_dist=True)
    checkpoint = torch.load(path / METADATA_FILE, map_location="cpu", weights_only=True)
    checkpoint["state_dict"] = {k.removeprefix(WEIGHTS_PREFIX): v for k, v in weights.items()}
    return checkpoint
