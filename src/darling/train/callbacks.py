"""Side work around training: saving the final policy, checkpoints on preemption."""

from __future__ import annotations

import json
import logging
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
    """On SIGTERM (SLURM preemption, ``kill``), save ``last.ckpt`` once the current step ends.

    Lightning's own handler records the signal (``trainer.received_sigterm``, broadcast to every
    rank) and exits after the step; this callback writes the checkpoint first (atomically: Lightning
    writes through an fsspec transaction), so ``ckpt_path=last`` resumes from that very step.
    """

    def __init__(self, checkpoint_path: str | Path):
        self.checkpoint_path = Path(checkpoint_path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.received_sigterm:
            log.warning("SIGTERM: saving %s before exiting", self.checkpoint_path)
            trainer.save_checkpoint(self.checkpoint_path)


class RolloutLog(L.Callback):
    """Append every rollout (response, quality, class, diversity, reward, advantage) to
    ``<run dir>/rollouts/rank<r>.jsonl``; on resume, rows of redone steps are dropped first."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._started = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        records = (outputs or {}).get("rollouts")
        if not records:
            return
        path = self.directory / f"rank{trainer.global_rank}.jsonl"
        if not self._started:
            self._started = True
            self.directory.mkdir(parents=True, exist_ok=True)
            if path.exists():
                first = records[0]["step"]
                kept = [line for line in path.read_text().splitlines()
                        if json.loads(line)["step"] < first]
                path.write_text("".join(line + "\n" for line in kept))
        with path.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
