"""Side work around training: saving the final policy, checkpoints on preemption."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import lightning as L

log = logging.getLogger(__name__)


class SavePolicy(L.Callback):
    """At the end of training, write the policy (LoRA merged) and tokenizer as safetensors to
    ``<run dir>/policy`` so ``evaluate.py`` and ``transformers`` can load it directly."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        policy = pl_module.policy
        if hasattr(policy, "merge_and_unload"):
            import copy

            policy = copy.deepcopy(policy).merge_and_unload()
        policy.save_pretrained(self.directory, safe_serialization=True)
        pl_module.tokenizer.save_pretrained(self.directory)
        log.info("saved the trained policy to %s", self.directory)


class CheckpointOnSigterm(L.Callback):
    """On SIGTERM (SLURM preemption, ``kill``), finish the current step, save ``last.ckpt`` and
    stop; ``python train.py ... ckpt_path=last`` then continues from that step."""

    def __init__(self, checkpoint_path: str | Path):
        self.checkpoint_path = Path(checkpoint_path)
        self._requested = False
        self._previous = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._previous = signal.signal(signal.SIGTERM, self._request)

    def _request(self, signum, frame) -> None:
        self._requested = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._requested:
            log.warning("SIGTERM: saving %s and stopping", self.checkpoint_path)
            trainer.save_checkpoint(self.checkpoint_path)
            trainer.should_stop = True

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
