"""Single-file checkpoints written atomically on the run directory's own filesystem."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from darling.errors import UnwritableError

log = logging.getLogger(__name__)

TMP_MARK = ".tmp-"
"""A checkpoint is written to ``<target>.tmp-<pid>`` first."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write ``<target>.tmp-<pid>`` next to the target, fsync it, then ``os.replace`` it.

    ``os.replace`` within one directory is atomic on POSIX, so ``last.ckpt`` is always either
    the previous complete file or the new one, wherever ``$TMPDIR`` lives (Lightning's own
    writer stages through a temporary location and can end in a copy over the target, which a
    kill leaves truncated). For single-file strategies; the model-parallel strategy writes
    sharded checkpoint directories with its own writer.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")
        try:
            with tmp.open("wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except (OSError, RuntimeError) as err:
            if not _out_of_space(err, path.parent):
                raise
            raise UnwritableError(
                f"no space left on the device of {path.parent} while writing {path.name}: free "
                f"space, then resume with ckpt_path=last (the previous checkpoint is intact)"
            ) from err
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(path.parent)


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete ``*.tmp-<pid>`` files that a killed writer left in ``directory``; returns them.

    Call before training starts (one run owns its checkpoint directory)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if TMP_MARK in p.name and p.is_file()]
    for path in stale:
        path.unlink()
        log.warning("removed %s, a partial checkpoint left by an interrupted save", path)
    return stale


def hidden_sibling(path: Path, tag: str) -> Path:
    """``<dir>/.<name>.<tag>``: where a directory is written (``partial``) or kept aside
    (``old``) before it replaces ``path``."""
    return path.with_name(f".{path.name}.{tag}")


def remove_path(path: Path) -> None:
    """Delete ``path``, a folder or a file, if it exists."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _out_of_space(err: BaseException, directory: Path) -> bool:
    """Whether a failed write ran out of disk space: ``ENOSPC``, or torch's zip writer's
    ``[enforce fail at inline_container.cc]`` (which hides the errno) on a nearly full device."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "enforce fail" in str(err) or "file write failed" in str(err):
        try:
            return shutil.disk_usage(directory).free < MIN_FREE_BYTES
        except OSError:
            return False
    return False


MIN_FREE_BYTES = 64 * 1024**2
"""Below this much free space, a failed checkpoint write is reported as a full disk."""


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
