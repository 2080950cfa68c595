"""Loggers configured by the ``logger/`` group."""

from __future__ import annotations

import csv
import json
from argparse import Namespace
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from darling.extras import require_module
from darling.wandb_runs import WANDB_IDENTITY, wandb_run_id


class ResumableCSVLogger(Logger):
    """One CSV row per training step in ``<save_dir>/metrics.csv``, kept across resumes.

    A run (fresh or resumed) calls ``start(first_step)`` before its first step: rows at or after
    the step it starts from are dropped and the file is rewritten at once (steps logged after the
    checkpoint are redone), so the file reads as if the run had never stopped, however many steps
    a kill lost. Columns are the union of all keys seen; the file is rewritten when a new key
    appears, otherwise each row is appended.
    """

    def __init__(self, save_dir: str | Path, filename: str = "metrics.csv"):
        super().__init__()
        self.path = Path(save_dir) / filename
        self._rows: list[dict[str, Any]] | None = None
        self._columns: list[str] = ["step"]

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args, **kwargs) -> None:
        """The resolved config is saved as ``config.yaml`` by the run itself."""

    @rank_zero_only
    def start(self, first_step: int) -> None:
        """Keep only the rows of steps before ``first_step`` and rewrite the file now."""
        self._rows = self._read_existing(first_step)
        self._rewrite()

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._rows is None:
            self.start(step or 0)
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        new = [k for k in row if k not in self._columns]
        self._columns.extend(new)
        self._rows.append(row)
        if new:
            self._rewrite()
        else:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, self._columns).writerow(row)

    def _read_existing(self, first_step: int) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            self._columns = list(reader.fieldnames or ["step"])
            rows = [r for r in reader if r["step"] != "" and int(r["step"]) < first_step]
        return rows

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self._columns)
            writer.writeheader()
            writer.writerows(self._rows or [])
        tmp.replace(self.path)


def wandb_logger(
    save_dir: str | Path,
    project: str,
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    **kwargs: Any,
):
    """Lightning's ``WandbLogger`` for one run directory.

    The wandb run id is a function of the run directory (``wandb_run_id``) and the logger resumes
    it (``resume="allow"``), so a requeued or resumed run continues its wandb run instead of
    starting a second one. ``group`` defaults to the Hydra sweep directory in a multirun (``""``:
    no group), so the runs of one sweep share a group; ``tags`` name the arm. The run's identity
    (id, entity, project, group, name, tags) is written to ``<save_dir>/wandb-run.json``, so that
    ``evaluate.py ckpt=<run dir> logger=wandb`` logs into the same run (``wandb_identity``). Set
    ``WANDB_MODE=offline`` to log without a network.
    """
    require_module("wandb", "logger=wandb")
    from lightning.pytorch.loggers import WandbLogger

    kwargs.setdefault("id", wandb_run_id(save_dir, name))
    kwargs.setdefault("resume", "allow")
    group = _sweep_group() if group is None else group or None
    tags = [str(t) for t in tags if t is not None]
    _write_identity(Path(save_dir), {"id": kwargs["id"], "project": project, "group": group,
                                     "name": name, "tags": tags, "entity": kwargs.get("entity")})
    return WandbLogger(save_dir=str(save_dir), project=project, name=name, group=group,
                       tags=tags, **kwargs)


@rank_zero_only
def _write_identity(save_dir: Path, identity: dict[str, Any]) -> None:
    save_dir.mkdir(parents=True, exist_ok=True)
    (save_dir / WANDB_IDENTITY).write_text(json.dumps(identity, indent=2) + "\n")


def _sweep_group() -> str | None:
    """The sweep directory of a Hydra multirun job, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    return str(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None
