"""Prompt files: rows of one kind, loaded into frozen ``PromptRow`` records.

Sources: ``builtin:<name>`` (a set shipped in the package, ``BUILTIN_SETS``), a ``.jsonl``
file (one JSON object per line), a ``.json`` file holding one JSON array of objects
(DeepScaleR's ``deepscaler.json``), a ``.parquet`` file (verl's data files; needs pandas and
pyarrow), or ``hf:<dataset>[:<split>]``, a hub dataset read with the ``datasets`` library where
the machine has hub access (never a default).

A row is one of

- ``{"prompt": ..., "answers": [...], "aliases": {alias: canonical}?}``: kind ``"answers"``,
  correct iff the response gives an accepted answer (``darling.tasks.answers.answer_in_set``);
- ``{"prompt": ..., "ground_truth": ...}``: kind ``"ground_truth"``, checked by mathematical
  equivalence (``math_equivalent``);
- ``{"prompt": ...}``: kind ``"open"``, scored by a reward model or judge (NoveltyBench's rows,
  ``{"id", "prompt", ...}``, are of this kind).

and the formats other tools write are read as one of these:

- ``prompt`` may be a list of chat messages ``[{"role": ..., "content": ...}, ...]`` (TRL's
  conversational format, verl's rows), ending with a user message; the policy continues the
  whole conversation, and ``PromptRow.prompt`` is the last user message's text;
- verl rows: ``reward_model.ground_truth`` is the row's ``ground_truth`` (absent: an open row)
  and ``data_source`` its ``category`` (unless the row has one);
- DeepScaleR rows ``{"problem": ..., "answer": ..., "solution"?}``: ``problem`` is the prompt
  and ``answer`` the ``ground_truth``.

Optional fields: ``id`` (default: the 0-based index of the row's line, array item or Parquet
row) and ``category``; other fields are ignored. One file holds one kind. Blank JSONL lines are
skipped. Every error is a ``ValueError`` naming the path and the line (item, row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from darling.errors import BadFileError, ConfigError, MissingPathError, NotAFileError

KINDS = ("answers", "ground_truth", "open")
ROLES = ("system", "user", "assistant", "tool")
"""Chat roles a prompt's messages may have (the policy's chat template renders them)."""
_GT_FIELD = "__ground_truth_field"
"""Where a row's ground truth came from (named in its errors): DeepScaleR's ``answer``, verl's
``reward_model.ground_truth``."""
HUB_PREFIX = "hf:"
"""``hf:<dataset>[:<split>]`` names a hub dataset (read with the ``datasets`` library)."""
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
    messages: tuple[tuple[str, str], ...] | None = None
    """``(role, content)`` of each chat message when the row's prompt was a message list (the
    last one is the user's ``prompt``); None for a plain-text prompt."""

    @property
    def chat(self) -> list[dict[str, str]]:
        """The conversation the policy continues: the row's messages, or one user message."""
        if self.messages is None:
            return [{"role": "user", "content": self.prompt}]
        return [{"role": role, "content": content} for role, content in self.messages]

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


BUILTIN_PREFIX = "builtin:"
BUILTIN_SETS = {
    "train": "builtin_train.jsonl",
    "heldout": "builtin_heldout.jsonl",
    "math_train": "math_train.jsonl",
    "math_heldout": "math_heldout.jsonl",
}
"""``builtin:<name>`` prompt sets shipped in the package (``tasks/data``): the open-ended task
and the CPU math task (``darling.tasks.data.build_math``)."""


def resolve_builtin(path: str | Path) -> str | Path:
    """``builtin:<name>`` -> the shipped file; any other path unchanged."""
    if not str(path).startswith(BUILTIN_PREFIX):
        return path
    name = str(path)[len(BUILTIN_PREFIX):]
    if name not in BUILTIN_SETS:
        raise ConfigError(f"{path}: no such built-in prompt set; choose one of "
                         f"{[BUILTIN_PREFIX + n for n in BUILTIN_SETS]}")
    return DATA_DIR / BUILTIN_SETS[name]


def load_prompts(path: str | Path, template: str | None = None) -> list[PromptRow]:
    """Read a prompt file (``.jsonl``, ``.json`` array, ``.parquet``) or a hub dataset
    (``hf:<dataset>[:<split>]``) into ``PromptRow`` records, in file order.

    ``template``: a string containing ``{prompt}``, into which each row's prompt text is put
    (for message rows, the last user message's), e.g. a math answer-format instruction.

    Raises ``FileNotFoundError`` for a missing file, ``IsADirectoryError`` for a folder, and
    ``ValueError`` (naming the path and line) for an empty file, bad JSON, a
    row that is not an object, a missing or empty ``prompt``, bad chat messages, ``answers``
    that is not a non-empty list of non-empty strings, bad ``aliases``, an empty
    ``ground_truth``, a row with both ``answers`` and ``ground_truth``, duplicate ids, and a file
    whose rows mix kinds. Parquet needs pandas and pyarrow, hub datasets the ``datasets``
    package (``ImportError`` saying so otherwise).
    """
    if template is not None and "{prompt}" not in template:
        raise ConfigError(f"data.prompt_template={template!r} must contain {{prompt}}")
    path = resolve_builtin(path)
    if str(path).startswith(HUB_PREFIX):
        name, unit, raw = str(path), "row", _hub_records(str(path))
    else:
        name = path = Path(path)
        if path.is_dir():
            raise NotAFileError(f"{path}: is a directory, not a prompt file (pass a .jsonl, "
                                ".json or .parquet file)")
        if not path.is_file():
            raise MissingPathError(f"{path}: prompt file not found")
        unit = {".parquet": "row", ".json": "item"}.get(path.suffix, "line")
        reader = {"row": _parquet_records, "item": _json_records, "line": _jsonl_records}[unit]
        raw = reader(path)
    rows = [_to_row(record, index, f"{name}: {unit} {index + 1}") for index, record in raw]
    if not rows:
        raise BadFileError(f"{name}: prompt file is empty")
    _check_one_kind(rows, raw, name, unit)
    _check_unique_ids(rows, raw, name, unit)
    return rows if template is None else [apply_template(row, template) for row in rows]


def apply_template(row: PromptRow, template: str) -> PromptRow:
    """``row`` with its prompt text (the last user message of a message row) put into
    ``template`` at ``{prompt}`` (plain replacement: other braces, as in ``\\boxed{}``, stay).

    >>> apply_template(PromptRow("0", "1+1?", "open"), "{prompt} Answer as {x}.").prompt
    '1+1? Answer as {x}.'
    """
    text = template.replace("{prompt}", row.prompt)
    if row.messages is None:
        return replace(row, prompt=text)
    last = len(row.messages) - 1
    return replace(row, prompt=text, messages=tuple(
        (role, text if i == last else content) for i, (role, content) in enumerate(row.messages)
    ))


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


def _json_records(path: Path) -> list[tuple[int, Any]]:
    """A ``.json`` file holding one array of row objects (DeepScaleR's ``deepscaler.json``); a
    ``.json`` file of JSON lines is read as JSONL."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BadFileError(
            f"{path}: not UTF-8 (byte offset {error.start}); save the file as UTF-8"
        ) from None
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # several JSON values: JSON lines in a .json file
            return _jsonl_records(path)
        raise BadFileError(
            f"{path}: bad JSON at line {error.lineno}, column {error.colno} ({error.msg})"
        ) from error
    if not isinstance(data, list):
        raise BadFileError(
            f"{path}: a .json prompt file holds one array of row objects, got a "
            f"{type(data).__name__} (one object per line: name the file .jsonl)"
        )
    return list(enumerate(data))


def _hub_records(name: str) -> list[tuple[int, Any]]:
    """``hf:<dataset>[:<split>]`` (default split ``train``) through ``datasets.load_dataset``."""
    dataset, _, split = name[len(HUB_PREFIX):].partition(":")
    if not dataset:
        raise ConfigError(f"{name}: name a dataset, hf:<dataset>[:<split>]")
    try:
        from datasets import load_dataset
    except ImportError as error:
        raise ImportError(
            f"{name}: hub datasets need the datasets package (pip install 'darling[hub]') and "
            "hub access; or download the file and pass its path"
        ) from error
    records = load_dataset(dataset, split=split or "train")
    return [(index, _plain_tree(record)) for index, record in enumerate(records)]


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
        (index, {key: _plain_tree(value) for key, value in record.items()
                 if not _is_missing(value)})
        for index, record in enumerate(frame.to_dict(orient="records"))
    ]


def _to_row(record: Any, index: int, where: str) -> PromptRow:
    if not isinstance(record, dict):
        raise BadFileError(f"{where}: a row must be a JSON object, got {type(record).__name__}")
    record = _canonical(record, where)
    prompt, messages = record.get("prompt"), None
    if isinstance(prompt, list):
        messages = _messages(prompt, where)
        prompt = messages[-1][1]
    elif not isinstance(prompt, str):
        raise BadFileError(
            f"{where}: the row has no string 'prompt' field (a string, a list of chat messages "
            "[{'role': 'user', 'content': ...}], or a DeepScaleR 'problem')"
        )
    if not prompt.strip():
        raise BadFileError(f"{where}: 'prompt' is empty")
    category = record.get("category", record.get("data_source"))
    common = {
        "id": str(index if record.get("id") is None else record["id"]),
        "prompt": prompt,
        "category": None if category is None else str(category),
        "messages": messages,
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
            kind="ground_truth",
            ground_truth=_ground_truth(record["ground_truth"], where,
                                       record.get(_GT_FIELD, "ground_truth")),
            **common,
        )
    if "answer" in record:
        raise BadFileError(
            f"{where}: unknown field 'answer': name it 'answers' (a list of accepted answers) "
            "or 'ground_truth' (one math answer)"
        )
    return PromptRow(kind="open", **common)


def _canonical(record: dict, where: str) -> dict:
    """A DeepScaleR row (``problem``, ``answer``) or a verl row (``reward_model.ground_truth``,
    ``data_source``) in this module's field names; other rows unchanged."""
    if "problem" in record and "prompt" not in record:
        if "answer" not in record:
            raise BadFileError(
                f"{where}: a DeepScaleR row ('problem') needs its 'answer' (the ground truth)"
            )
        if "ground_truth" in record or "answers" in record:
            raise BadFileError(f"{where}: a DeepScaleR row has 'answer', not also "
                             "'ground_truth' or 'answers'")
        rest = {k: v for k, v in record.items() if k not in ("problem", "answer")}
        return {**rest, "prompt": record["problem"], "ground_truth": record["answer"],
                _GT_FIELD: "answer"}
    if "reward_model" in record:
        spec = record["reward_model"]
        if not isinstance(spec, dict):
            raise BadFileError(f"{where}: 'reward_model' must be an object (verl: {{'style': ..., "
                             f"'ground_truth': ...}}), got {type(spec).__name__}")
        if spec.get("ground_truth") is not None:
            if "ground_truth" in record or "answers" in record:
                raise BadFileError(f"{where}: the row has 'reward_model.ground_truth' and also "
                                 "'ground_truth' or 'answers'; keep one")
            record = {**record, "ground_truth": spec["ground_truth"],
                      _GT_FIELD: "reward_model.ground_truth"}
    return record


def _messages(value: list, where: str) -> tuple[tuple[str, str], ...]:
    """``(role, content)`` pairs of a chat-message prompt; the last must be the user's."""
    if not value:
        raise BadFileError(f"{where}: 'prompt' is an empty list of chat messages")
    out = []
    for number, message in enumerate(value, start=1):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise BadFileError(
                f"{where}: prompt message {number} must be an object with a string 'content' "
                f"and a 'role', got {message!r:.80}"
            )
        if message.get("role") not in ROLES:
            raise BadFileError(f"{where}: prompt message {number} has role "
                             f"{message.get('role')!r}; use one of {list(ROLES)}")
        out.append((message["role"], message["content"]))
    if out[-1][0] != "user":
        raise BadFileError(f"{where}: the last prompt message is the {out[-1][0]}'s; a prompt "
                         "ends with the user message the policy answers")
    return tuple(out)


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


def _ground_truth(value: Any, where: str, name: str = "ground_truth") -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadFileError(f"{where}: {name!r} must be a string or a number, got "
                         f"{type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise BadFileError(f"{where}: {name!r} is empty")
    return text


def _plain_tree(value: Any) -> Any:
    """Parquet cells arrive as numpy arrays and scalars, nested in dicts (verl's
    ``reward_model``) and arrays of dicts (chat messages); make them JSON-like Python values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_tree(v) for v in value]
    return value


def _is_missing(value: Any) -> bool:
    """A Parquet null (``None`` or NaN) in a column that other rows fill."""
    return value is None or (isinstance(value, float) and value != value)


def _check_one_kind(rows: list[PromptRow], raw: list[tuple[int, Any]], path: Any, unit: str):
    lines_by_kind: dict[str, list[int]] = {}
    for row, (index, _) in zip(rows, raw, strict=True):
        lines_by_kind.setdefault(row.kind, []).append(index + 1)
    if len(lines_by_kind) > 1:
        parts = [f"'{kind}' at {unit}s {_some(lines)}" for kind, lines in lines_by_kind.items()]
        raise BadFileError(f"{path}: rows mix kinds ({'; '.join(parts)}); one file holds one kind")


def _check_unique_ids(rows: list[PromptRow], raw: list[tuple[int, Any]], path: Any, unit: str):
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
