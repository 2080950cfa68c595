"""Read back what wandb runs logged, from their local files (offline or online), without a
network: the config, every history row, the summary and the run's identity.

wandb writes each run's records to ``<dir>/wandb/{offline-,}run-<time>-<id>/run-<id>.wandb``:
a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then LevelDB-log blocks of 32 KiB whose
chunks (4-byte checksum, 2-byte length, 1-byte type: full, first, middle, last) carry protobuf
``Record`` messages (``wandb.proto.wandb_internal_pb2``). A resumed run leaves one such folder per
process; ``wandb sync`` uploads them in order of start time into one run, and ``read_runs``
merges them the same way. Checksums are not verified.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darling.extras import require_module

_HEADER = struct.Struct("<4sHB")
_CHUNK = struct.Struct("<IHB")
_BLOCK = 32768
_FULL, _LAST = 1, 4


@dataclass
class LoggedRun:
    """One wandb run as its local files hold it."""

    id: str
    project: str = ""
    group: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    job_type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    """Top-level config keys -> values (nested dicts as logged)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Every logged row (``wandb.log``), keys as logged (``reward/mean``); tables and images as
    their file references (a dict with ``_type``)."""
    summary: dict[str, Any] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)
    """The run's local folders, first started first (what ``wandb sync`` takes)."""

    def config_value(self, dotted: str) -> Any:
        """``config_value("reward.diversity_weight")``; None when absent."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    @property
    def history_keys(self) -> set[str]:
        return {k for row in self.history for k in row}


def read_records(path: str | Path) -> list[Any]:
    """The protobuf records of one ``.wandb`` file, in order."""
    require_module("wandb", "reading wandb run files")
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, _ = _HEADER.unpack_from(data)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a wandb run file (header {data[:7]!r})")
    records, pending, pos = [], b"", _HEADER.size
    while pos + _CHUNK.size <= len(data):
        if _BLOCK - pos % _BLOCK < _CHUNK.size:  # a block's tail too short for a chunk: padding
            pos += _BLOCK - pos % _BLOCK
            continue
        _, length, kind = _CHUNK.unpack_from(data, pos)
        pos += _CHUNK.size
        pending += data[pos:pos + length]
        pos += length
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def read_runs(directory: str | Path) -> dict[str, LoggedRun]:
    """Every wandb run whose folders lie under ``directory`` (a run dir, a sweep dir), by id, its
    folders merged in order of start time: config and summary updated, history appended."""
    runs: dict[str, LoggedRun] = {}
    files = sorted(Path(directory).rglob("*run-*/run-*.wandb"),
                   key=lambda p: p.parent.name.split("run-", 1)[1])
    for path in files:
        records = read_records(path)
        run_id = next((r.run.run_id for r in records if r.WhichOneof("record_type") == "run"),
                      path.stem.removeprefix("run-"))
        run = runs.setdefault(run_id, LoggedRun(id=run_id))
        run.folders.append(path.parent)
        for record in records:
            _apply(run, record)
    return runs


def _apply(run: LoggedRun, record: Any) -> None:
    kind = record.WhichOneof("record_type")
    if kind == "run":
        r = record.run
        run.project = r.project or run.project
        run.group = r.run_group or run.group
        run.name = r.display_name or run.name
        run.job_type = r.job_type or run.job_type
        run.tags = list(r.tags) or run.tags
    elif kind == "config":
        for item in record.config.update:  # each top-level key as {"value": ...}
            value = json.loads(item.value_json)
            wrapped = isinstance(value, dict) and "value" in value
            run.config[item.key or "/".join(item.nested_key)] = value["value"] if wrapped else value
    elif kind == "history":
        row: dict[str, Any] = {}
        for item in record.history.item:
            _set(row, item)
        run.history.append(row)
    elif kind == "summary":
        for item in record.summary.update:
            _set(run.summary, item)


def _set(tree: dict[str, Any], item: Any) -> None:
    """Put one logged item into ``tree``: a flat key (``reward/mean``), or a nested key path,
    which wandb uses for the fields of a logged table or image (``rollouts/table`` -> ``path``)."""
    path = [item.key] if item.key else list(item.nested_key)
    for part in path[:-1]:
        if not isinstance(tree.get(part), dict):  # a later update turned a value into fields
            tree[part] = {}
        tree = tree[part]
    tree[path[-1]] = json.loads(item.value_json)
