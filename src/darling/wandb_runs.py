"""The wandb run of a run directory: its id, the file that names it, whether a ``logger/``
config uses wandb, and ending a run. Training and evaluation both read these; nothing here
imports Lightning until a logger exists to close."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

WANDB_IDENTITY = "wandb-run.json"
"""The file in a run directory that names the wandb run it logs to."""


def wandb_identity(run_dir: str | Path, run_name: str | None = None) -> dict[str, Any]:
    """The wandb run a training run directory logs to: ``id``, ``entity``, ``project``,
    ``group``, ``name`` and ``tags`` from its ``wandb-run.json``; for a run trained without
    wandb, the id and name it would have had (``wandb_run_id`` of the directory and
    ``run_name``), no group (``""``) and no tags."""
    path = Path(run_dir) / WANDB_IDENTITY
    if path.is_file():
        identity = json.loads(path.read_text())
        return {**identity, "group": identity.get("group") or ""}
    return {"id": wandb_run_id(run_dir, run_name), "name": run_name, "group": "", "tags": []}


def uses_wandb(logger_cfg: Any) -> bool:
    """Whether a ``logger/`` config builds the wandb logger."""
    return logger_cfg is not None and "wandb" in str(logger_cfg.get("_target_", ""))


def wandb_run_id(save_dir: str | Path, name: str | None = None) -> str:
    """``<name>-<8 hex of the absolute run directory>``: stable across restarts of one run,
    distinct for two runs of the same name in different directories (wandb ids allow letters,
    digits, ``-`` and ``_``)."""
    digest = hashlib.sha1(str(Path(save_dir).resolve()).encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name or "run").strip("-")[:_MAX_ID_STEM]
    return f"{stem}-{digest}"


_MAX_ID_STEM = 55
"""wandb ids are at most 64 characters: the stem, a dash and 8 hex digits."""


def close_logger(logger: Any) -> None:
    """End a wandb run, so that the next run in this process (a sweep job, a test) starts its own
    run instead of appending to this one, and wait until wandb's service has written all of it to
    the run's files: ``finish()`` can return before its last records (a table logged at the last
    step, the evaluation's summary) reach ``run-<id>.wandb``, and the next reader (``wandb
    sync``, ``dashboard.py``, an evaluation resuming the run in this process) would miss them.
    ``wandb.teardown()`` waits for that; the next run starts a new service. Other loggers need
    nothing."""
    from lightning.pytorch.loggers import WandbLogger  # a logger exists: Lightning is loaded
    from lightning.pytorch.utilities import rank_zero_only

    if isinstance(logger, WandbLogger):
        logger.experiment.finish()
        if rank_zero_only.rank == 0:
            import wandb

            wandb.teardown()
