"""Prompt files: JSONL (or Parquet) rows of one kind, loaded into frozen ``PromptRow`` records.

A row is one of

- ``{"prompt": ..., "answers": [...], "aliases": {alias: canonical}?}``: kind ``"answers"``,
  correct iff the response gives an accepted answer (``darling.tasks.answers.answer_in_set``);
- ``{"prompt": ..., "ground_truth": ...}``: kind ``"ground_truth"``, checked by mathematical
  equivalence (``math_equivalent``);
- ``{"prompt": ...}``: kind ``"open"``, scored by a reward model or judge.

Optional fields: ``id`` (default: the 0-based index of the row's line, or of the Parquet row)
and ``category``; other fields are ignored. One file holds one kind. Blank JSONL lines are
skipped. Every error is a ``ValueError`` naming the path and the line (or Parquet row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darling.errors import BadFileError, ConfigError, MissingPathError, NotAFileError

KINDS = ("answers", "ground_truth", "open")
SPLITS = ("train", "heldout")
DATA_DIR = Path(__file__).with_name("data")
_MAX_LINES_IN_MESSAGE = 5


@dataclass(frozen=True)
class PromptRow:
    """One prompt and what decides correctness.

    ``answers``/``aliases`` are set only for kind ``"answers"``, ``ground_truth`` only for kind
    ``"ground_truth"``; the others are ``None``/empty.
    """

    id: str
    prompt: str
    kind: str
    answers: tuple[str, ...] | None = None
    aliases: tuple[tuple[str, str], ...] = ()
    ground_truth: str | None = None
    category: str | None = None

    @property
    def alias_map(self) -> dict[str, str]:
        """``aliases`` as the mapping ``answer_in_set`` takes."""
        return dict(self.aliases)


def row_field(row: Any, name: str) -> Any:
    """``name`` of a prompt row (a ``PromptRow`` or a plain dict); a clear error if absent."""
    value = row.get(name) if isinstance(row, dict) else getattr(row, name, None)
    if value is None:
        raise ConfigError(f"prompt row {row!r} has no {name!r}, which this function needs")
    return value


def row_aliases(row: Any) -> dict[str, str] | None:
    """A row's ``{alias: canonical}`` map (``None`` when it has none), from either row form."""
    aliases = row.get("aliases") if isinstance(row, dict) else getattr(row, "alias_map", None)
    return dict(aliases) if aliases else None


def builtin_path(split: str) -> Path:
    """Path of the built-in open-ended verifiable task, split ``"train"`` or ``"heldout"``."""
    if split not in SPLITS:
        raise ConfigError(f"unknown built-in split {split!r}: choose one of {SPLITS}")
    return DATA_DIR / f"builtin_{split}.jsonl"


def load_prompts(path: str | Path) -> list[PromptRow]:
    """Read a ``.jsonl`` or ``.parquet`` prompt file into ``PromptRow`` records (file order).

    Raises ``FileNotFoundError`` for a missing file, ``IsADirectoryError`` for a folder, and
    ``ValueError`` (naming the path and line) for an empty file, bad JSON, a
    row that is not an object, a missing or empty ``prompt``, ``answers`` that is not a
    non-empty list of non-empty strings, bad ``aliases``, an empty ``ground_truth``, a row with
    both ``answers`` and ``ground_truth``, duplicate ids, and a file whose rows mix kinds.
    Parquet needs pandas and pyarrow (``ImportError`` saying so otherwise).
    """
    path = Path(path)
    if path.is_dir():
        raise NotAFileError(f"{path}: is a directory, not a prompt file (pass a .jsonl or "
                            ".parquet file)")
    if not path.is_file():
        raise MissingPathError(f"{path}: prompt file not found")
    unit = "row" if path.suffix == ".parquet" else "line"
    raw = _parquet_records(path) if unit == "row" else _jsonl_records(path)
    rows = [_to_row(record, index, f"{path}: {unit} {index + 1}") for index, record in raw]
    if not rows:
        raise BadFileError(f"{path}: prompt file is empty")
    _check_one_kind(rows, raw, path, unit)
    _check_unique_ids(rows, raw, path, unit)
    return rows


def _jsonl_records(path: Path) -> list[tuple[int, Any]]:
    records = []
    with path.open("rb") as handle:
        for index, raw in enumerate(handle):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise BadFileError(
                    f"{path}: line {index + 1}: not UTF-8 (byte {raw[error.start]:#04x} at "
                    f"column {error.start + 1}); save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                records.append((index, json.loads(line)))
            except json.JSONDecodeError as error:
                raise BadFileError(f"{path}: line {index + 1}: bad JSON ({error.msg})") from error
    return records


def _parquet_records(path: Path) -> list[tuple[int, Any]]:
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError as error:
        raise ImportError(
            f"{path}: reading Parquet needs pandas and pyarrow (pip install pandas pyarrow), "
            "or convert the file to JSONL"
        ) from error
    return [
        (index, {key: _plain(value) for key, value in record.items() if not _is_missing(value)})
        for index, record in enumerate(frame.to_dict(orient="records"))
    ]


def _to_row(record: Any, index: int, where: str) -> PromptRow:
    if not isinstance(record, dict):
        raise BadFileError(f"{where}: a row must be a JSON object, got {type(record).__name__}")
    prompt = record.get("prompt")
    if not isinstance(prompt, str):
        raise BadFileError(f"{where}: the row has no string 'prompt' field")
    if not prompt.strip():
        raise BadFileError(f"{where}: 'prompt' is empty")
    common = {
        "id": str(index if record.get("id") is None else record["id"]),
        "prompt": prompt,
        "category": None if record.get("category") is None else str(record["category"]),
    }
    if "answers" in record and "ground_truth" in record:
        raise BadFileError(f"{where}: a row has 'answers' or 'ground_truth', not both")
    if "answers" in record:
        answers = _answers(record["answers"], where)
        aliases = _aliases(record.get("aliases", {}), answers, where)
        return PromptRow(kind="answers", answers=answers, aliases=aliases, **common)
    if "aliases" in record:
        raise BadFileError(f"{where}: 'aliases' needs an 'answers' field")
    if "ground_truth" in record:
        return PromptRow(
            kind="ground_truth", ground_truth=_ground_truth(record["ground_truth"], where), **common
        )
    if "answer" in record:
        raise BadFileError(
            f"{where}: unknown field 'answer': name it 'answers' (a list of accepted answers) "
            "or 'ground_truth' (one math answer)"
        )
    return PromptRow(kind="open", **common)


def _answers(value: Any, where: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(a, str) and a.strip() for a in value)
    ):
        raise BadFileError(f"{where}: 'answers' must be a non-empty list of non-empty strings")
    return tuple(value)


def _aliases(value: Any, answers: tuple[str, ...], where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadFileError(f"{where}: 'aliases' must map strings (alias) to strings (canonical)")
    unknown = sorted({s for pair in value.items() for s in pair} - set(answers))
    if unknown:
        raise BadFileError(f"{where}: 'aliases' names strings not in 'answers': {unknown}")
    return tuple(value.items())


def _ground_truth(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadFileError(f"{where}: 'ground_truth' must be a string or a number")
    text = str(value)
    if not text.strip():
        raise BadFileError(f"{where}: 'ground_truth' is empty")
    return text


def _plain(value: Any) -> Any:
    """Parquet cells arrive as numpy arrays and scalars; make them JSON-like Python values."""
    return value.tolist() if hasattr(value, "tolist") else value


def _is_missing(value: Any) -> bool:
    """A Parquet null (``None`` or NaN) in a column that other rows fill."""
    return value is None or (isinstance(value, float) and value != value)


def _check_one_kind(rows: list[PromptRow], raw: list[tuple[int, Any]], path: Path, unit: str):
    lines_by_kind: dict[str, list[int]] = {}
    for row, (index, _) in zip(rows, raw, strict=True):
        lines_by_kind.setdefault(row.kind, []).append(index + 1)
    if len(lines_by_kind) > 1:
        parts = [f"'{kind}' at {unit}s {_some(lines)}" for kind, lines in lines_by_kind.items()]
        raise BadFileError(f"{path}: rows mix kinds ({'; '.join(parts)}); one file holds one kind")


def _check_unique_ids(rows: list[PromptRow], raw: list[tuple[int, Any]], path: Path, unit: str):
    first_line: dict[str, int] = {}
    for row, (index, _) in zip(rows, raw, strict=True):
        if row.id in first_line:
            raise BadFileError(
                f"{path}: {unit} {index + 1}: id {row.id!r} repeats {unit} {first_line[row.id]}"
            )
        first_line[row.id] = index + 1


def _some(lines: list[int]) -> str:
    shown = ", ".join(map(str, lines[:_MAX_LINES_IN_MESSAGE]))
    return shown + (", ..." if len(lines) > _MAX_LINES_IN_MESSAGE else "")
