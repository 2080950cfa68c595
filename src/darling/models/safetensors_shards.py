"""Write a model's weights the way the Hugging Face ecosystem reads a large model: safetensors
files of at most ``max_shard_bytes`` each with ``model.safetensors.index.json``, or one
``model.safetensors`` when everything fits in one shard (``transformers``' ``save_pretrained``
does the same). Tensors arrive one at a time; only the shard being filled is held in memory.
And read such a checkpoint a slice at a time (``stored_tensors``), for ranks that each load
only the rows they hold.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_GB = 5.0
"""transformers' ``max_shard_size`` default of its 4.x releases: files that upload and mmap well."""

_DTYPE_NAMES = {
    torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
_HEADER_ALIGNMENT = 8
"""safetensors pads its JSON header with spaces to a multiple of 8 bytes."""


def shard_file_name(index: int, count: int) -> str:
    """Hugging Face's shard name: ``model-00001-of-00003.safetensors`` (``index`` from 1)."""
    return f"model-{index:05d}-of-{count:05d}.safetensors"


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor],
                      metadata: dict[str, str] | None = None) -> None:
    """One safetensors file: 8-byte little-endian header length, the JSON header (dtype, shape
    and byte offsets of every tensor), then each tensor's bytes in header order. Each tensor is
    written from its own memory, with no serialised copy of the shard."""
    header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for name, t in tensors.items():
        size = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % _HEADER_ALIGNMENT)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for t in tensors.values():
            if t.numel():
                f.write(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)


class ShardedSafetensorsWriter:
    """Collect tensors into shards of at most ``max_shard_bytes`` and write each shard as soon as
    the next tensor would overflow it (a tensor larger than the limit gets a shard of its own,
    as in transformers). ``close`` names the files ``model-0000i-of-0000n.safetensors`` and
    writes the index, or names a lone shard ``model.safetensors`` without an index.

    ``add`` keeps the tensor it is given: pass a copy the caller no longer uses. Told the size
    of the tensor that comes next, it writes the shard at once when that one would not fit, so
    the shard is freed before the next tensor is made.
    """

    def __init__(self, directory: str | Path, max_shard_bytes: int):
        if max_shard_bytes <= 0:
            raise ValueError(f"max_shard_bytes={max_shard_bytes}: must be > 0")
        self.directory = Path(directory)
        self.max_shard_bytes = max_shard_bytes
        self._shard: dict[str, torch.Tensor] = {}
        self._shard_bytes = 0
        self._written: list[list[str]] = []  # tensor names of each written shard
        self.total_bytes = 0
        self.peak_shard_bytes = 0
        """Largest number of tensor bytes held at once (the shard being filled)."""

    def add(self, name: str, tensor: torch.Tensor, coming: int = 0) -> None:
        """Add ``tensor`` to the shard being filled; ``coming``: bytes of the next tensor, if
        known (0: not known, the shard is written when that tensor arrives and does not fit)."""
        size = tensor.numel() * tensor.element_size()
        if self._shard and self._shard_bytes + size > self.max_shard_bytes:
            self._flush()
        self._shard[name] = tensor
        self._shard_bytes += size
        self.total_bytes += size
        self.peak_shard_bytes = max(self.peak_shard_bytes, self._shard_bytes)
        if coming and self._shard_bytes + coming > self.max_shard_bytes:
            self._flush()

    def close(self) -> list[str]:
        """Write the last shard, give every file its final name, write the index when there is
        more than one file; returns the file names."""
        if self._shard or not self._written:
            self._flush()
        count = len(self._written)
        if count == 1:
            self._part(0).rename(self.directory / SINGLE_FILE)
            return [SINGLE_FILE]
        names = [shard_file_name(i + 1, count) for i in range(count)]
        weight_map = {}
        for i, (file_name, tensors) in enumerate(zip(names, self._written, strict=True)):
            self._part(i).rename(self.directory / file_name)
            weight_map.update(dict.fromkeys(tensors, file_name))
        index = {"metadata": {"total_size": self.total_bytes},
                 "weight_map": dict(sorted(weight_map.items()))}
        (self.directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        return [*names, INDEX_FILE]

    def _flush(self) -> None:
        write_safetensors(self._part(len(self._written)), self._shard)
        self._written.append(list(self._shard))
        self._shard, self._shard_bytes = {}, 0

    def _part(self, i: int) -> Path:
        return self.directory / f".shard-{i:05d}.part"


_DTYPES_BY_NAME = {name: dtype for dtype, name in _DTYPE_NAMES.items()}


@dataclass(frozen=True)
class StoredTensor:
    """Where one tensor lies in a safetensors file: ``dtype``, ``shape`` and the absolute byte
    offset of its first element (header included)."""

    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int

    def read_rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of the tensor (its dim-0 slice), read with plain file reads: the
        slice is contiguous in the file, so exactly ``(stop - start) x row bytes`` are read and
        nothing is memory-mapped (a mapped file's touched pages count in the process's resident
        memory until it is unmapped)."""
        rows = self.shape[0] if self.shape else 1
        start, stop = max(0, start), min(stop, rows)
        inner = self.shape[1:]
        out = torch.empty((max(stop - start, 0), *inner), dtype=self.dtype)
        if out.numel():
            row_bytes = out[0].numel() * out.element_size()
            with open(self.file, "rb") as f:
                f.seek(self.offset + start * row_bytes)
                f.readinto(out.reshape(-1).view(torch.uint8).numpy())
        return out if self.shape else out.reshape(())


def stored_tensors(directory: str | Path) -> dict[str, StoredTensor]:
    """Every tensor of the safetensors checkpoint in ``directory`` (``model.safetensors``, or the
    files that ``model.safetensors.index.json`` names), by name; only the headers are read."""
    directory = Path(directory)
    if (directory / INDEX_FILE).is_file():
        weight_map = json.loads((directory / INDEX_FILE).read_text())["weight_map"]
        files = sorted({directory / name for name in weight_map.values()})
    else:
        files = [directory / SINGLE_FILE]
    found = {}
    for file in files:
        with open(file, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        header.pop("__metadata__", None)
        for name, entry in header.items():
            found[name] = StoredTensor(file, _DTYPES_BY_NAME[entry["dtype"]],
                                       tuple(entry["shape"]), 8 + length + entry["data_offsets"][0])
    return found


def has_safetensors(directory: str | Path) -> bool:
    """Whether ``directory`` holds a safetensors checkpoint ``stored_tensors`` can read."""
    directory = Path(directory)
    return (directory / INDEX_FILE).is_file() or (directory / SINGLE_FILE).is_file()
