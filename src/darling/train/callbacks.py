"""Side work around training: saving the final policy, checkpoints on preemption."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import lightning as L

from darling.models.merged import merged_weights

log = logging.getLogger(__name__)


class SavePolicy(L.Callback):
    """At the end of training, write the policy (LoRA merged) and tokenizer as safetensors to
    ``<run dir>/policy`` so ``evaluate.py`` and ``transformers`` can load it directly.

    Every rank takes part: under sharding each weight is all-gathered in turn
    (``darling.models.merged.merged_weights``), and rank 0 keeps the full tensors on the CPU and
    writes one ``model.safetensors`` with the model's config. The directory appears atomically
    (written into a temporary sibling, then renamed)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        policy = pl_module.policy
        base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
        tied = bool(getattr(base.config, "tie_word_embeddings", False))
        state = {}
        for name, tensor in merged_weights(policy):
            if trainer.is_global_zero and not (tied and name == "lm_head.weight"):
                state[name] = tensor.detach().to("cpu", copy=True).contiguous()
        if trainer.is_global_zero:
            write_policy(self.directory, state, base, pl_module.tokenizer)
            log.info("saved the trained policy to %s", self.directory)
        trainer.strategy.barrier()


def write_policy(directory: Path, state: dict, model, tokenizer) -> None:
    """``model.safetensors`` (``state``), the model's config and generation config and the
    tokenizer, into ``directory``, replacing it atomically."""
    from safetensors.torch import save_file

    partial = directory.with_name(f".{directory.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    save_file(state, partial / "model.safetensors", metadata={"format": "pt"})
    model.config.save_pretrained(partial)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if directory.exists():
        shutil.rmtree(directory)
    partial.rename(directory)


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
