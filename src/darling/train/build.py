"""Build a training run's objects from its composed config: the reward rule, the strategy, the
LightningModule, the callbacks and the Trainer. No if/elif on mode strings: each group's choice
is a Hydra ``_target_`` or a dataclass field read here once."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import ModelParallelStrategy
from omegaconf import DictConfig

from darling.models.loading import checkpoint_dir
from darling.rewards import Reward
from darling.train.callbacks import (
    CheckpointOnSigterm,
    RolloutLog,
    RolloutTable,
    SavePolicy,
    StepMetrics,
    step_progress_bar,
)
from darling.train.checkpoint_io import AtomicCheckpointIO
from darling.train.module import DarlingModule
from darling.train.policy import load_policy_weights
from darling.train.resume import run_meaning
from darling.train.rollouts import RolloutCallback


def build_reward(spec: DictConfig) -> Reward:
    """The arm's reward rule from ``cfg.reward``: its fusion and quality transform are Hydra
    partials (``conf/reward/fusion/``, ``conf/reward/quality_transform/``)."""
    return Reward(
        fusion=instantiate(spec.fusion),
        diversity_weight=float(spec.diversity_weight),
        quality_transform=instantiate(spec.quality_transform),
        std_normalize=bool(spec.std_normalize),
        name=str(spec.name),
    )


def build_strategy(strategy: Any) -> Any:
    """``trainer.strategy``: a ``_target_`` config (``trainer=fsdp``) built, else Lightning's
    name for one (``auto``, ``ddp``) as it is."""
    if isinstance(strategy, DictConfig) and "_target_" in strategy:
        return instantiate(strategy)
    return strategy


def build_module(cfg: DictConfig, policy: torch.nn.Module, tokenizer: Any, classifier: Any,
                 sharded: bool) -> DarlingModule:
    """The LightningModule on ``policy``; ``sharded`` (``trainer=fsdp``, a policy built on the
    meta device): rank 0 loads the weights once in ``configure_model``."""
    return DarlingModule(
        policy=policy,
        tokenizer=tokenizer,
        classifier=classifier,
        quality_fn=instantiate(cfg.quality),
        diversity_fn=instantiate(cfg.diversity),
        reward=build_reward(cfg.reward),
        optim=cfg.optim,
        temperature=cfg.rollout.temperature,
        max_failed_steps=cfg.max_failed_steps,
        run_meaning=run_meaning(cfg),
        policy_weights=partial(load_policy_weights, cfg.model, cfg.seed) if sharded else None,
        policy_files=checkpoint_dir(cfg.model) if sharded else None,
    )


def build_callbacks(cfg: DictConfig, run_dir: Path, rollouts: RolloutCallback,
                    step_metrics: StepMetrics, save_policy: SavePolicy) -> list[L.Callback]:
    """The run's callbacks, in the order Lightning calls them at the end of a step."""
    checkpoints = run_dir / "checkpoints"
    every_n = cfg.trainer.checkpoint_every_n_steps
    return [
        rollouts,  # samples before each step, syncs the engine after it (before its metrics)
        step_metrics,  # before any checkpoint of the step: rows and checkpoints agree
        *([RolloutLog(run_dir / "rollouts")] if cfg.log_rollouts else []),
        *([RolloutTable(cfg.rollout_table_every_n_steps)]
          if cfg.rollout_table_every_n_steps > 0 else []),
        ModelCheckpoint(
            dirpath=checkpoints,
            filename="step{step:06d}",
            auto_insert_metric_name=False,
            every_n_train_steps=every_n,
            save_last=True,
            save_top_k=1,
            enable_version_counter=False,
        ),
        CheckpointOnSigterm(checkpoints / "last.ckpt", every_n),
        save_policy,
        *([step_progress_bar()] if cfg.trainer.enable_progress_bar else []),
    ]


def build_trainer(cfg: DictConfig, run_dir: Path, strategy: Any,
                  callbacks: list[L.Callback]) -> L.Trainer:
    """Lightning's Trainer from ``cfg.trainer`` and ``cfg.logger``, writing into ``run_dir``."""
    t = cfg.trainer
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=strategy,
        precision=t.precision,
        max_steps=t.max_steps,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.enable_progress_bar,
        num_sanity_val_steps=t.num_sanity_val_steps,
        limit_val_batches=0,
        use_distributed_sampler=False,
        default_root_dir=str(run_dir),
        logger=instantiate(cfg.logger, save_dir=str(run_dir)) if cfg.logger else False,
        # single-file checkpoints are replaced atomically next to their target; the
        # model-parallel strategy writes sharded directories with its own writer
        plugins=[] if isinstance(strategy, ModelParallelStrategy) else [AtomicCheckpointIO()],
        callbacks=callbacks,
    )
