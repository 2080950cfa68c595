"""Side work around training: saving the final policy, checkpoints on preemption."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import torch

from darling.models.loading import DTYPES, transformers_model
from darling.models.merged import full_on_rank0, merged_shapes, merged_weights
from darling.models.safetensors_shards import DEFAULT_MAX_SHARD_GB, ShardedSafetensorsWriter
from darling.train.checkpoint_io import hidden_sibling, remove_path

log = logging.getLogger(__name__)


class SavePolicy(L.Callback):
    """At the end of training, write the policy (LoRA merged) and tokenizer as safetensors to
    ``<run dir>/policy`` so ``evaluate.py``, ``transformers`` and vLLM load it directly.

    Every rank takes part: under sharding each weight is gathered in turn onto rank 0 only,
    each rank casting its own rows to ``dtype`` before sending them
    (``darling.models.merged.merged_weights`` with ``full_on_rank0``), and rank 0 adds it to the
    shard being filled, which is written and freed as soon as the next weight would take it past
    ``max_shard_gb``, before that weight is gathered (``ShardedSafetensorsWriter``). So rank 0
    holds at most one shard, the arriving weight included (a LoRA-adapted weight is merged in
    float32 first), never the whole model. Several shards
    come with Hugging Face's ``model.safetensors.index.json``; a model that fits in one is a
    single ``model.safetensors``.
    The directory appears atomically (written into a temporary sibling, then renamed)."""

    def __init__(self, directory: str | Path, dtype: str | None = None,
                 max_shard_gb: float = DEFAULT_MAX_SHARD_GB):
        self.directory = Path(directory)
        self.dtype = DTYPES[dtype] if dtype else None
        """None: each weight in the dtype training holds it in (float32 master weights)."""
        self.max_shard_bytes = int(max_shard_gb * 1e9)
        self.peak_shard_bytes = 0

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if hasattr(pl_module, "check_scored"):
            pl_module.check_scored()  # no policy from a run whose quality never scored a row
        policy = pl_module.policy
        base = transformers_model(policy)
        tied = bool(getattr(base.config, "tie_word_embeddings", False))
        writer = None
        if trainer.is_global_zero:
            partial = hidden_sibling(self.directory, "partial")
            remove_path(partial)
            partial.mkdir(parents=True)
            writer = ShardedSafetensorsWriter(partial, self.max_shard_bytes)
        skip = {"lm_head.weight"} if tied else set()  # the embedding again: not gathered
        dtype = self.dtype or next(policy.parameters()).dtype  # the dtype written
        sizes = [shape.numel() * dtype.itemsize for _, shape in merged_shapes(policy, skip)]
        weights = merged_weights(policy, gather=full_on_rank0, dtype=self.dtype, skip=skip)
        for index, (name, tensor) in enumerate(weights):
            if writer is not None:
                coming = sizes[index + 1] if index + 1 < len(sizes) else 0
                writer.add(name, tensor.detach().to("cpu").contiguous(), coming=coming)
            del tensor
        if writer is not None:
            writer.close()
            self.peak_shard_bytes = writer.peak_shard_bytes
            finish_policy_dir(self.directory, base, pl_module.tokenizer, dtype)
            log.info("saved the trained policy to %s", self.directory)
        trainer.strategy.barrier()


def finish_policy_dir(directory: Path, model, tokenizer, dtype: torch.dtype) -> None:
    """Add the model's config (its ``dtype`` the one written), generation config and tokenizer
    to the weights in ``directory``'s temporary sibling, then rename it over ``directory``."""
    partial = hidden_sibling(directory, "partial")
    model.config.save_pretrained(partial)
    config_file = partial / "config.json"
    config = json.loads(config_file.read_text())
    config.pop("torch_dtype", None)
    config["dtype"] = str(dtype).removeprefix("torch.")
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    remove_path(directory)
    partial.rename(directory)


class StepMetrics(L.Callback):
    """Write each step's metrics to the loggers before that step's checkpoint is saved.

    ``training_step`` returns its metrics (``outputs["metrics"]``); this callback averages them
    over the processes and hands them to every logger in ``on_train_batch_end``, which Lightning
    runs before the checkpoint callbacks (it orders ``ModelCheckpoint`` last). Lightning's own
    logging happens after those callbacks, so a kill right after a save lost the saved step's row.
    Rows are keyed by the 0-based rollout step; at train start the loggers drop the rows of steps
    the run is about to (re)do (``ResumableCSVLogger.start``). ``last`` holds the latest metrics,
``steps_run`` counts the steps of this ``fit``.
    """

    def __init__(self, every_n_steps: int = 1):
        self.every_n_steps = every_n_steps
        self.last: dict[str, float] = {}
        self.steps_run = 0

    def on_train_start(self, trainer, pl_module) -> None:
        for logger in trainer.loggers:
            if hasattr(logger, "start"):
                logger.start(pl_module.rollout_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        metrics = (outputs or {}).get("metrics")
        if not metrics:
            return
        self.steps_run += 1
        keys = sorted(metrics)
        values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
        if trainer.world_size > 1:
            values = trainer.strategy.reduce(values.to(pl_module.device), reduce_op="mean").cpu()
        self.last = dict(zip(keys, values.tolist(), strict=True))
        step = pl_module.rollout_step - 1  # training_step has advanced the counter
        if (step + 1) % self.every_n_steps and not _is_final_step(trainer):
            return
        for logger in trainer.loggers:
            logger.log_metrics(self.last, step=step)
        if trainer.is_global_zero:
            log.info("step %d/%d: %s", step + 1, _rollout_steps(trainer), step_story(self.last))


STORY = (("reward", "reward/mean", ".3f"), ("quality", "reward/quality_mean", ".3f"),
         ("classes/group", "diversity/classes_per_group", ".2f"),
         ("quality failed", "reward/failed", ".0f"), ("loss", "loss/total", ".4f"))
"""What a step's line in train.log shows: label, metric key, format."""


def step_story(metrics: dict[str, float]) -> str:
    """One step as a line of train.log: its rewards and loss, then the seconds per phase.

    >>> step_story({"reward/mean": 0.5, "time/generate": 1.25, "reward/failed": 0.0})
    'reward 0.500, quality failed 0; generate 1.2 s'
    """
    parts = [f"{label} {metrics[key]:{spec}}" for label, key, spec in STORY if key in metrics]
    times = [f"{key.split('/', 1)[1]} {value:.1f} s" for key, value in metrics.items()
             if key.startswith("time/")]
    return ", ".join(parts) + ("; " + ", ".join(times) if times else "")


def _rollout_steps(trainer: L.Trainer) -> int:
    """The run's rollout steps: ``max_steps`` counts optimiser steps."""
    module = trainer.lightning_module
    spec = getattr(module, "optim_spec", None)
    per_step = int(spec.ppo_epochs) * int(spec.mini_batches) if spec is not None else 1
    return max(1, trainer.max_steps // max(per_step, 1))


class CheckpointOnSigterm(L.Callback):
    """Save ``last.ckpt`` after the final step and, on SIGTERM (SLURM preemption, ``kill``),
    after the current step, unless the periodic save of ``ModelCheckpoint`` (every
    ``every_n_steps``) writes it at this very step anyway.

    Lightning's ``ModelCheckpoint`` skips the final step when ``max_steps`` is not a multiple of
    its period, which left ``last.ckpt`` older than ``policy/``. Lightning's own SIGTERM handler
    records the signal (``trainer.received_sigterm``, broadcast to every rank) and exits after the
    step; this callback writes the checkpoint first, so ``ckpt_path=last`` resumes from that very
    step. ``train`` then exits with ``SIGTERM_EXIT_CODE`` unless that step was the last.
    """

    def __init__(self, checkpoint_path: str | Path, every_n_steps: int):
        self.checkpoint_path = Path(checkpoint_path)
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        final = _is_final_step(trainer)
        if not (final or trainer.received_sigterm):
            return
        if trainer.global_step % self.every_n_steps == 0:
            return  # ModelCheckpoint saves last.ckpt at this step
        if trainer.received_sigterm:
            log.warning("SIGTERM: saving %s before exiting", self.checkpoint_path)
        trainer.save_checkpoint(self.checkpoint_path, weights_only=False)  # the full state


def _is_final_step(trainer: L.Trainer) -> bool:
    return trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps


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


ROLLOUT_TABLE_KEY = "rollouts/table"
"""The logger key of the rollout table (``RolloutTable``)."""

ROLLOUT_TABLE_COLUMNS = ("step", "group_id", "prompt", "response", "quality", "class",
                         "diversity", "reward", "advantage")
"""Its columns: one row per rollout of the group shown; ``diversity`` is Div_i."""


class RolloutTable(L.Callback):
    """Every ``every_n_steps`` steps, add the rollouts of one group (the first prompt rank 0
    sampled) to a table and hand the whole table to each logger that takes tables
    (``log_table``: wandb), as TRL's ``LogCompletionsCallback`` does with its completions: the
    latest version of ``rollouts/table`` holds every group shown since the process started (a
    resumed run starts a new table), one row per rollout with its prompt, response, quality,
    class, Div, reward and advantage. Rank 0 only; loggers without tables (csv) get nothing: the
    full log is ``RolloutLog``'s."""

    def __init__(self, every_n_steps: int):
        self.every_n_steps = every_n_steps
        self.rows: list[list] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        records = (outputs or {}).get("rollouts")
        loggers = [lg for lg in trainer.loggers if hasattr(lg, "log_table")]
        if not (records and loggers and trainer.is_global_zero):
            return
        step = records[0]["step"]
        if (step + 1) % self.every_n_steps and not _is_final_step(trainer):
            return
        prompts = {row.id: row.prompt for row in batch.rows}
        first = records[0]["group_id"]
        self.rows += [
            [step, str(r["group_id"]), prompts.get(r["prompt_id"], r["prompt_id"]),
             r["response"], *(r[k] for k in ROLLOUT_TABLE_COLUMNS[4:])]
            for r in records if r["group_id"] == first
        ]
        for logger in loggers:
            logger.log_table(ROLLOUT_TABLE_KEY, columns=list(ROLLOUT_TABLE_COLUMNS),
                             data=self.rows, step=step)


def step_progress_bar() -> L.Callback:
    """Lightning's progress bar (Rich when installed, else tqdm) counting the run's steps:
    ``steps 12/30`` from the first step, resumed or not, instead of an epoch count of a run
    without epochs (``Epoch 0/-2``) and batches of this ``fit`` only (``12/4`` after a resume)."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
    from lightning.pytorch.callbacks.progress.rich_progress import _RICH_AVAILABLE

    base = RichProgressBar if _RICH_AVAILABLE else TQDMProgressBar

    class StepProgressBar(base):
        @property
        def total_train_batches(self) -> int:
            return self.trainer.max_steps

        def _get_train_description(self, current_epoch: int) -> str:  # Rich
            return "steps"

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            super().on_train_epoch_start(trainer, pl_module)
            if base is TQDMProgressBar:
                self.train_progress_bar.set_description("steps")
                self.train_progress_bar.n = trainer.global_step
            elif self.train_progress_bar_id is not None:
                self._update(self.train_progress_bar_id, trainer.global_step)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, trainer.global_step - 1)

    return StepProgressBar()
