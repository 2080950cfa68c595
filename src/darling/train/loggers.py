"""Loggers configured by the ``logger/`` group."""

from __future__ import annotations

import csv
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from darling.extras import require_module


class ResumableCSVLogger(Logger):
    """One CSV row per training step in ``<save_dir>/metrics.csv``, kept across resumes.

    A resumed run first drops rows at or after the step it restarts from (steps logged after
    the checkpoint are redone), so the file reads as if the run had never stopped. Columns are
    the union of all keys seen; the file is rewritten when a new key appears.
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
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._rows is None:
            self._rows = self._read_existing(step or 0)
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        new = [k for k in row if k not in self._columns]
        self._columns.extend(new)
        self._rows.append(row)
        if new or len(self._rows) == 1:
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


def wandb_logger(save_dir: str | Path, project: str, group: str, name: str, **kwargs: Any):
    """Lightning's ``WandbLogger``; runs of one sweep share ``group``. Set ``WANDB_MODE=offline``
    to log without a network."""
    require_module("wandb", "logger=wandb")
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(save_dir=str(save_dir), project=project, group=group, name=name, **kwargs)


def close_logger(logger: Any) -> None:
    """End a wandb run, so that the next run in this process (a sweep job, a test) starts its own
    run instead of appending to this one. Other loggers need nothing."""
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger):
        logger.experiment.finish()
