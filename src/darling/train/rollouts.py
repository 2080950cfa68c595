"""The rollout callback: the engine's whole life around Lightning's loop.

    on_train_start        bind the engine to the policy (after Lightning restored a checkpoint,
                          so a resumed engine starts from the restored weights)
    on_train_batch_start  sample the step's prompts into the batch the training step reads
    on_train_batch_end    sync the engine to the updated policy (every rank together)
    teardown              release the engine

The LightningModule never sees the engine: its ``training_step`` starts from the rollouts.
"""

from __future__ import annotations

import time

import lightning as L

from darling.rollout.base import RolloutEngine, group_seeds
from darling.train.data import PromptSchedule, RolloutBatch, chat_prompt


class RolloutCallback(L.Callback):
    """Samples each step's prompts with ``engine`` and keeps the engine on the current policy.

    Prompts come from ``schedule`` by the module's ``rollout_step`` and this process's rank;
    group ``g`` is sampled with ``group_seeds(seed, [g], n)``, a function of the run seed and the
    group only, so neither resuming nor changing the number of processes changes its rollouts.
    """

    def __init__(self, engine: RolloutEngine, schedule: PromptSchedule, seed: int,
                 system_prompt: str | None = None):
        self.engine, self.schedule = engine, schedule
        self.seed, self.system_prompt = seed, system_prompt

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.engine.bind(pl_module.policy, pl_module.tokenizer)

    def on_train_batch_start(self, trainer, pl_module, batch: RolloutBatch, batch_idx) -> None:
        step = pl_module.rollout_step
        scheduled = self.schedule.rows_for_step(step, trainer.global_rank, trainer.world_size)
        group_ids = [gid for gid, _ in scheduled]
        rows = [row for _, row in scheduled]
        prompts = [chat_prompt(pl_module.tokenizer, r, self.system_prompt) for r in rows]
        seeds = group_seeds(self.seed, group_ids, self.engine.sampling.n_per_prompt)
        start = time.perf_counter()
        batch.rollouts = self.engine.generate(prompts, group_ids, seeds=seeds)
        batch.seconds["generate"] = time.perf_counter() - start
        batch.step, batch.rows = step, rows

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        start = time.perf_counter()
        self.engine.sync()
        metrics = (outputs or {}).get("metrics")
        if metrics is not None:
            metrics["time/sync"] = time.perf_counter() - start

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.engine.close()
