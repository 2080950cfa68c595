"""Mistakes a user can fix, and how the entry points report them.

A ``UserError`` (a bad config value, a missing or unreadable file, an existing run, a checkpoint
of another run) is printed by ``train.py``, ``evaluate.py`` and ``train_classifier.py`` as one
line, ``error: <what to change>``, on stderr, with exit code 2 and no traceback; any other
exception is a bug and keeps its traceback. ``HYDRA_FULL_ERROR=1`` shows the traceback of a user
error too.

A failed start leaves nothing behind: Hydra creates the job's output directory (``.hydra/``, the
job's ``.log``) before the task function runs, so ``ForgetFailedStart`` (a Hydra callback of the
shipped configs) notes what existed when Hydra started, and ``user_errors`` puts it back when a
user error ends the job: a directory the start created is removed, the Hydra files of an existing
one get their old content back.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

USER_ERROR_EXIT_CODE = 2
"""Exit code of a refused start (argparse's and most Unix tools' code for a usage error)."""


class UserError(Exception):
    """A mistake in the command, the config or the files given; the message says what to change."""


class ConfigError(UserError, ValueError):
    """A config value (or a combination of values) that darling refuses."""


class MissingPathError(UserError, FileNotFoundError):
    """A file or folder named by the config does not exist."""


class RunExistsError(UserError, FileExistsError):
    """A fresh start would overwrite an existing run."""


class BadFileError(UserError, ValueError):
    """A file exists but is not what it should be (a truncated checkpoint, a broken folder)."""


class UnwritableError(UserError, OSError):
    """A folder darling must write cannot be written (read-only, no space left)."""


class NotAFolderError(UserError, NotADirectoryError):
    """A file sits where darling writes a folder."""


class NotAFileError(UserError, IsADirectoryError):
    """A folder sits where darling reads or writes a file."""


class NoQualitySignal(UserError, RuntimeError):
    """The quality function (a judge) failed on every rollout: training would learn nothing."""


class MissingExtraError(UserError, ImportError):
    """The config needs an optional dependency that is not installed; the message names the
    extra to install."""


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line: a list of problems is joined with ``; ``.

    >>> one_line(ValueError("invalid config:\\n  a: bad\\n  b: worse"))
    'invalid config: a: bad; b: worse'
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = ""
    for line in lines:
        text += line if not text else (" " if text.endswith(":") else "; ") + line
    return text or type(err).__name__


_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def is_hub_name(name: str) -> bool:
    """Whether ``name`` could be a model-hub id (``org/model`` or ``model``) rather than a path
    (absolute, relative with ``./``, or deeper than one folder).

    >>> is_hub_name("sentence-transformers/all-MiniLM-L6-v2"), is_hub_name("/models/rm")
    (True, False)
    """
    return bool(_HUB_NAME.fullmatch(name)) and ".." not in name and not name.endswith(".")


def exit_on_user_error(err: UserError) -> None:
    """Print ``error: <message>`` on stderr and exit with ``USER_ERROR_EXIT_CODE``."""
    sys.stderr.write(f"error: {one_line(err)}\n")
    sys.stderr.flush()
    raise SystemExit(USER_ERROR_EXIT_CODE)


def write_problem(directory: str | Path) -> OSError | None:
    """Why a file cannot be created in the existing folder ``directory`` (read-only, full), by
    creating and removing one; None when it can."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as err:
        return err
    return None


def _full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


@contextmanager
def user_errors(job_dir: str | Path | None = None) -> Iterator[None]:
    """Report a ``UserError`` raised inside as one line and exit 2. A refused start first undoes
    what Hydra's start of job ``job_dir`` wrote (see ``ForgetFailedStart``), and ends a ``-m``
    sweep at once; an error after the work began keeps the directory and ends its log with the
    reason (under ``-m`` it is re-raised, so Hydra runs the other jobs and reports it at the
    end, as for any failure). With ``HYDRA_FULL_ERROR=1`` the error is re-raised (Hydra prints
    its traceback) after the same clean-up."""
    try:
        yield
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        if ForgetFailedStart._work_began:  # the run's log ends with why it stopped
            logging.getLogger("darling").error("stopped: %s", one_line(user_error))
            if _in_multirun():
                raise  # as before: Hydra runs the sweep's other jobs, then reports this one
        elif job_dir is not None:
            ForgetFailedStart.undo(Path(job_dir))
        if _full_error():
            raise
        exit_on_user_error(user_error)


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:
        return False
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def find_user_error(err: BaseException) -> UserError | None:
    """``err`` or the ``UserError`` it wraps (Hydra's ``instantiate`` wraps what a ``_target_``
    raises in an ``InstantiationException`` ``from`` it), else None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def check_command_line(argv: Sequence[str]) -> None:
    """Checks of the raw command line, before Hydra echoes or writes any of it; a refusal is
    printed as one line (``error: ...``) with exit code 2.

    An ``*api_key_env=<value>`` whose value looks like a key rather than the name of an
    environment variable is refused here: Hydra would log the override, save it in
    ``.hydra/overrides.yaml`` and, under ``-m``, in ``multirun.yaml``."""
    from darling.quality.secrets import refuse_literal_key

    try:
        for arg in argv:
            key, sep, value = arg.partition("=")
            if sep and key.lstrip("+~").split(".")[-1] == "api_key_env":
                for choice in value.split(","):  # a -m sweep over several names
                    refuse_literal_key(key.lstrip("+~"), choice.strip().strip("'\""))
    except UserError as err:
        if _full_error():
            raise
        exit_on_user_error(err)


class ForgetFailedStart:
    """A Hydra callback that notes, before Hydra creates anything, which job directories exist
    and the content of their Hydra files (``.hydra/*``, ``*.log``), so that ``undo(job_dir)``
    can remove a directory created by a start that a ``UserError`` then refused, or give an
    existing one back its Hydra files (an existing run keeps its own ``.hydra/overrides.yaml``).

    Listed in ``hydra.callbacks`` of ``conf/config.yaml``, ``conf/evaluate.yaml`` and
    ``conf/train_classifier/config.yaml``."""

    _existing: dict[Path, dict[Path, bytes | int]] = {}
    """job directory that existed -> {Hydra file: its bytes (``.hydra/``) or size (a log)}"""
    _sweep_dir: Path | None = None
    _sweep_dir_existed = True
    _root: Path | None = None
    """The nearest folder above the job (or sweep) directory that existed before the start."""
    _work_began = False
    """Set by ``work_began()``: from then on an error is no refused start, and its run directory
    (its log telling what happened) is left as it is."""

    def __init__(self, **kwargs: Any):
        pass

    # Hydra calls every hook of ``hydra.experimental.callback.Callback`` by name (not imported
    # here: darling's core does not import Hydra)
    def on_compose_config(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_job_start(self, *args: Any, **kwargs: Any) -> None:
        type(self)._work_began = False

    @classmethod
    def work_began(cls) -> None:
        """The job starts its work (training's first step, an evaluation's sampling): an error
        after this point keeps what the job wrote."""
        cls._work_began = True

    def on_job_end(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_run_end(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_multirun_end(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        directory = _select(config, "hydra.run.dir")
        type(self)._existing, type(self)._work_began = {}, False
        if directory is not None:
            type(self)._root = _existing_ancestor(directory)
            self._note(directory)
            if directory.is_dir() and (problem := write_problem(directory)) is not None:
                # Hydra would fail opening its log there ("Unable to configure handler")
                err = UnwritableError(f"{directory} is not writable ({problem}); make it "
                                      "writable, or pass another run_name / eval.out_dir")
                if _full_error():
                    raise err
                exit_on_user_error(err)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        cls = type(self)
        cls._existing, cls._work_began = {}, False
        sweep = _select(config, "hydra.sweep.dir")
        cls._sweep_dir = None if sweep is None else sweep.resolve()
        cls._sweep_dir_existed = sweep is None or sweep.exists()
        cls._root = None if sweep is None else _existing_ancestor(sweep)
        if sweep is not None and sweep.is_dir():
            for child in sweep.iterdir():
                self._note(child)

    @classmethod
    def _note(cls, directory: Path) -> None:
        if not directory.is_dir():
            return
        directory = directory.resolve()
        files: dict[Path, bytes | int] = {}
        for path in directory.glob("*.log"):
            if path.is_file():
                files[path] = path.stat().st_size
        hydra = directory / ".hydra"
        if hydra.is_dir():
            for path in hydra.iterdir():
                if path.is_file():
                    files[path] = path.read_bytes()
        cls._existing[directory] = files

    @classmethod
    def undo(cls, job_dir: Path) -> None:
        """Put ``job_dir`` back as it was before Hydra started the job (best effort: a failure
        to clean up must not hide the user's error)."""
        if cls._work_began:
            return
        job_dir = job_dir.resolve()
        try:
            if job_dir not in cls._existing:
                if _created_by_hydra_only(job_dir):
                    shutil.rmtree(job_dir)
                sweep = cls._sweep_dir
                if (sweep is not None and not cls._sweep_dir_existed and sweep.is_dir()
                        and {p.name for p in sweep.iterdir()} <= {"multirun.yaml"}):
                    shutil.rmtree(sweep)
                    _remove_empty_parents(sweep, cls._root)
                _remove_empty_parents(job_dir, cls._root)
                return
            before = cls._existing[job_dir]
            for path in list((job_dir / ".hydra").glob("*")) + list(job_dir.glob("*.log")):
                old = before.get(path)
                if old is None and path.is_file():
                    path.unlink()
                elif isinstance(old, bytes):
                    path.write_bytes(old)
                elif isinstance(old, int) and path.stat().st_size > old:
                    os.truncate(path, old)
            hydra = job_dir / ".hydra"
            if hydra.is_dir() and not any(hydra.iterdir()):
                hydra.rmdir()
        except OSError:
            pass


START_FILES = ("config.yaml", "hparams.yaml")
"""Files a start writes before its first step (besides Hydra's); anything else (a checkpoint, a
metric row, a rollout) means the run did something, and its folder is kept."""


def _created_by_hydra_only(job_dir: Path) -> bool:
    """Whether ``job_dir`` holds nothing but what a start writes before any work: Hydra's
    ``.hydra/`` and log, the resolved config, empty folders."""
    if not job_dir.is_dir():
        return False
    for path in job_dir.rglob("*"):
        rel = path.relative_to(job_dir)
        if rel.parts[0] == ".hydra" or (len(rel.parts) == 1 and (
                path.suffix == ".log" or path.name in START_FILES)):
            continue
        if path.is_dir() and not any(path.iterdir()):
            continue
        return False
    return True


def _existing_ancestor(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _remove_empty_parents(path: Path, root: Path | None) -> None:
    """Remove the empty folders above ``path`` that the start created (``runs/`` of a first run,
    the parents Hydra made for ``hydra.run.dir=a/b/c``), up to ``root``, which existed."""
    if root is None:
        return
    parent = path.parent
    while parent != root and root in parent.parents and parent.is_dir() and not any(
            parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def _select(config: Any, key: str) -> Path | None:
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(config, key)
    except Exception:  # noqa: BLE001 - an unresolvable dir: Hydra reports it itself
        return None
    return None if value is None else Path(str(value))
