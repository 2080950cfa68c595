"""What the data-building scripts of this folder share: the command line and the JSONL writer."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from darling.tasks.prompts import DATA_DIR


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    """One JSON object per line (UTF-8, ``\\n`` line ends, non-ASCII kept as is)."""
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    return path


def build_main(
    doc: str, write_split_files: Callable[[Path], dict[str, Path]], argv: Sequence[str] | None
) -> None:
    """``python -m <script> [--out DIR]``: ``write_split_files(DIR)``, DIR defaulting to this
    folder; ``doc`` is the script's docstring (its first line describes the command)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    write_split_files(parser.parse_args(argv).out)
