"""What a resume may change: a checkpoint continues only the run it was trained in, under the
settings that make that run what it is (``run_meaning``)."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from darling.errors import BadFileError, ConfigError
from darling.models.checkpoints import METADATA_FILE, run_dir_of

log = logging.getLogger(__name__)


RESUMABLE_KEYS = (
    "ckpt_path", "run_name", "trainer.max_steps", "trainer.enable_progress_bar",
    "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps", "logger", "log_rollouts",
    "rollout_table_every_n_steps", "max_failed_steps", "resume_any_config", "save",
)
"""Settings a resume may change: how long and how visibly the run goes, never what it trains."""


def run_meaning(cfg: DictConfig) -> dict[str, Any]:
    """The settings that make a run what it is: every resolved config key but
    ``RESUMABLE_KEYS``, flattened (``reward.diversity_weight``). Saved in each checkpoint."""
    flat = _flatten(OmegaConf.to_container(cfg, resolve=True))
    return {k: v for k, v in flat.items() if not _resumable(k)}


def _resumable(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


def _differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [
        f"{key}: {saved.get(key, '<unset>')!r} -> {current.get(key, '<unset>')!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key, _MISSING) != current.get(key, _MISSING) and not _resumable(key)
        # a setting added to the schema after the run started, left at its null default
        and not (key not in saved and current.get(key) is None)
    ]


def check_checkpoint_config(ckpt: str, cfg: DictConfig) -> None:
    """Refuse to resume a checkpoint that is not a darling training checkpoint, or that was
    trained under other settings than ``cfg`` (``run_meaning``), unless
    ``resume_any_config=true``: ``ckpt_path=runs/<a grpo run>/checkpoints/last.ckpt`` in a darling
    run would otherwise continue another run's policy, optimiser and step count silently.

    A checkpoint written before checkpoints held their settings is compared with the
    ``config.yaml`` of its own run directory instead; with neither, it is accepted with a
    warning (nothing to compare)."""
    path = Path(ckpt)
    state = _checkpoint_state(path)
    darling = state.get("darling")
    if not isinstance(darling, dict) or "rollout_step" not in darling:
        raise BadFileError(
            f"ckpt_path={ckpt}: not a darling training checkpoint (no darling state); pass a "
            "checkpoint written by train.py (runs/<name>/checkpoints/*.ckpt)"
        )
    if cfg.get("resume_any_config", False):
        return
    saved = darling.get("config")
    source = "the checkpoint"
    if saved is None:
        run_config = run_dir_of(path) / "config.yaml"
        if not run_config.is_file():
            log.warning("%s holds no record of its settings (written before checkpoints did) and "
                        "has no config.yaml beside it: resuming it unchecked", ckpt)
            return
        saved = _flatten(OmegaConf.to_container(OmegaConf.load(run_config), resolve=True))
        source = str(run_config)
    differing = _differences(saved, run_meaning(cfg))
    if differing:
        raise ConfigError(
            f"ckpt_path={ckpt} was trained under other settings; these differ from {source}:\n  "
            + "\n  ".join(differing) + "\nResume it with its own settings, start a fresh run "
            "without ckpt_path, or pass resume_any_config=true to continue it under these"
        )


def _checkpoint_state(path: Path) -> dict[str, Any]:
    """The non-weight state of a checkpoint file (memory-mapped, weights untouched) or of a
    sharded checkpoint's ``meta.pt``; a file that is no Lightning checkpoint is refused."""
    import pickle

    file = path / METADATA_FILE if path.is_dir() else path
    try:
        state = torch.load(file, map_location="cpu", weights_only=True,
                           mmap=not path.is_dir())
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        raise BadFileError(
            f"ckpt_path={path}: not a readable checkpoint ({type(err).__name__}); resume from "
            f"an earlier file in {path.parent} with ckpt_path=<file>"
        ) from None
    if not isinstance(state, dict) or "pytorch-lightning_version" not in state:
        raise BadFileError(
            f"ckpt_path={path}: not a Lightning training checkpoint (no pytorch-lightning_version);"
            " pass a checkpoint written by train.py (runs/<name>/checkpoints/*.ckpt)"
        )
    return state


def check_resume_config(cfg: DictConfig, run_dir: Path) -> None:
    """Refuse to resume ``run_dir`` under a config that changes the run's meaning (seed, reward,
    sampling, model, data, optimiser...): every key but ``RESUMABLE_KEYS`` must equal the saved
    ``config.yaml`` (a key the saved config lacks may stay at null: a newer schema's default).
    The message lists the differing keys; the saved config is left untouched."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = _flatten(OmegaConf.to_container(OmegaConf.load(saved_path), resolve=True))
    differing = _differences(saved, run_meaning(cfg))
    if differing:
        raise ConfigError(
            f"cannot resume {run_dir} under another config; these settings differ from its "
            "config.yaml:\n  " + "\n  ".join(differing) + "\nUse the run's own settings to "
            f"resume it, or a new run_name for a new run (a resume may change only "
            f"{', '.join(RESUMABLE_KEYS)})"
        )


_MISSING = object()


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: tree}
