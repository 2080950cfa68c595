"""Labelled response pairs (NoveltyBench format) and a prompt-disjoint split.

One JSON object per line with at least ``prompt``, ``generation_0``, ``generation_1`` and
``similar`` (1 = the two responses mean the same, 0 = not); ``labeler`` and ``id`` are kept
when present.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from darling.errors import BadFileError, ConfigError, MissingPathError

REQUIRED_FIELDS = ("prompt", "generation_0", "generation_1", "similar")


@dataclass(frozen=True)
class PairRow:
    """One labelled pair of responses to ``prompt``."""

    prompt: str
    text_a: str
    text_b: str
    label: int
    labeler: str = ""
    id: str = ""


def load_pairs(path: str | Path) -> list[PairRow]:
    """Read a JSONL file of labelled pairs; errors name the file and the 1-based line."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"no pairs file at {path}")
    rows: list[PairRow] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise BadFileError(f"{path}:{line_no}: bad JSON: {err}") from err
            if not isinstance(record, dict):
                raise BadFileError(f"{path}:{line_no}: expected a JSON object")
            missing = [f for f in REQUIRED_FIELDS if f not in record]
            if missing:
                raise BadFileError(f"{path}:{line_no}: missing field(s) {missing}")
            label = record["similar"]
            if label not in (0, 1) or isinstance(label, float):
                raise BadFileError(f"{path}:{line_no}: `similar` must be 0 or 1, got {label!r}")
            rows.append(
                PairRow(
                    prompt=str(record["prompt"]),
                    text_a=str(record["generation_0"]),
                    text_b=str(record["generation_1"]),
                    label=int(label),
                    labeler=str(record.get("labeler", "")),
                    id=str(record.get("id", "")),
                )
            )
    if not rows:
        raise BadFileError(f"{path}: no pairs (empty file)")
    return rows


def prompt_unit(prompt: str, seed: int) -> float:
    """A deterministic pseudo-uniform number in [0, 1) for ``(prompt, seed)`` (SHA-256 based)."""
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_by_prompt(
    rows: Sequence[PairRow], val_fraction: float, seed: int
) -> tuple[list[PairRow], list[PairRow]]:
    """Prompt-disjoint ``(train, val)`` split: a prompt goes to val iff its hash unit < fraction.

    Deterministic given ``seed`` and independent of row order; all pairs of a prompt land on the
    same side, so no response of a validation prompt is seen in training.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    train: list[PairRow] = []
    val: list[PairRow] = []
    for row in rows:
        (val if prompt_unit(row.prompt, seed) < val_fraction else train).append(row)
    if not train or not val:
        raise ValueError(
            f"split of {len(rows)} pairs with val_fraction={val_fraction} left one side empty"
        )
    return train, val


def prompt_folds(rows: Sequence[PairRow], n_folds: int, seed: int) -> list[int]:
    """Prompt-disjoint fold index in ``0..n_folds-1`` for each row (for cross-validation)."""
    return [min(int(prompt_unit(r.prompt, seed + 1) * n_folds), n_folds - 1) for r in rows]
