"""The run directory: that training can write it, and which checkpoint (if any) a run starts
from."""

from __future__ import annotations

import zipfile
from pathlib import Path

from darling.errors import (
    BadFileError,
    MissingPathError,
    NotAFileError,
    NotAFolderError,
    RunExistsError,
    UnwritableError,
    write_problem,
)
from darling.models.checkpoints import METADATA_FILE, is_sharded_checkpoint

RUN_DIR_FOLDERS = ("checkpoints", "policy", "rollouts")


RUN_DIR_FILES = ("config.yaml", "metrics.csv")


def check_writable(run_dir: Path) -> None:
    """Fail before training when the run directory cannot be written, or when an entry darling
    writes (``checkpoints/``, ``policy/``, ``rollouts/``, ``config.yaml``, ``metrics.csv``) has
    the wrong kind (a file where a folder goes, or the reverse)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UnwritableError(f"run directory {run_dir} is not writable: {err}") from err
    problem = write_problem(run_dir)
    if problem is not None:
        raise UnwritableError(f"run directory {run_dir} is not writable: {problem}")
    for name in RUN_DIR_FOLDERS:
        if (run_dir / name).exists() and not (run_dir / name).is_dir():
            raise NotAFolderError(
                f"{run_dir / name} is a file, but training writes a folder there: move or "
                "delete it, or pick another run_name"
            )
        problem = write_problem(run_dir / name) if (run_dir / name).is_dir() else None
        if problem is not None:  # found before training, not when the first checkpoint is due
            raise UnwritableError(f"{run_dir / name} is not writable: {problem}; make it "
                                  "writable or pick another run_name")
    for name in RUN_DIR_FILES:
        if (run_dir / name).is_dir():
            raise NotAFileError(
                f"{run_dir / name} is a folder, but training writes a file there: move or "
                "delete it, or pick another run_name"
            )


def resolve_checkpoint(ckpt_path: str | None, run_dir: Path) -> str | None:
    """``None`` -> fresh run (refused if ``run_dir`` already holds checkpoints, so nothing is
    overwritten); ``last`` -> the run dir's ``checkpoints/last.ckpt``; ``auto`` -> that checkpoint
    if it exists, else a fresh run (one command that starts or continues a run, as a requeued job
    needs); else an existing checkpoint. A checkpoint is a file (one process, DDP) or, under
    ``trainer=fsdp``, a directory of shards with ``meta.pt``."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if ckpt_path == "auto":
        return resolve_checkpoint("last" if last.exists() else None, run_dir)
    if ckpt_path is None:
        if last.exists():
            raise RunExistsError(
                f"{run_dir} already holds a run ({last}). Pass ckpt_path=last (or auto) to resume "
                "it, or run_name=<new name> to start another"
            )
        return None
    path = last if ckpt_path == "last" else Path(ckpt_path)
    if path.is_dir():
        if not is_sharded_checkpoint(path):
            raise BadFileError(
                f"checkpoint directory {path} has no {METADATA_FILE}: it is not a complete "
                f"sharded checkpoint; resume from another one in {path.parent} with "
                "ckpt_path=<dir>"
            )
        return str(path)
    if not path.is_file():
        raise MissingPathError(f"ckpt_path={ckpt_path!r}: no checkpoint at {path}")
    if not zipfile.is_zipfile(path):
        raise BadFileError(
            f"checkpoint {path} is corrupt or truncated (not a torch zip archive); resume from "
            f"an earlier file in {path.parent} with ckpt_path=<file>"
        )
    return str(path)
