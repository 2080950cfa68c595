"""Structured config schema: a typo or a wrong type fails at start-up naming the key.

Groups whose options are different classes (``quality/``, ``diversity/``, ``classifier/``,
``logger/``) are ``_target_`` dicts instantiated by Hydra; every other group is a dataclass below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from darling.config import DataSpec, RolloutSpec
from darling.fusion import DEFAULT_DIVERSITY_FLOOR
from darling.losses import DEFAULT_CLIP, DEFAULT_DUAL_CLIP
from darling.models.loading import ModelSpec
from darling.models.safetensors_shards import DEFAULT_MAX_SHARD_GB


@dataclass
class RewardSpec:
    """How quality and diversity become the training reward and advantage (``reward/``)."""

    name: str = "darling"
    fusion: Any = MISSING
    """A ``darling.fusion`` partial (``reward/fusion=multiplicative | additive |
    additive_zscore``)."""
    diversity_weight: float = 1.0
    """lambda in [0, 1]: 0 = quality-only GRPO, 1 = full DARLING. The knob sweeps move."""
    diversity_floor: float = DEFAULT_DIVERSITY_FLOOR
    """Norm(Div) = max(Div, floor) in multiplicative fusion (spec 1.4)."""
    quality_transform: Any = MISSING
    """A ``darling.fusion`` partial that maps quality onto a non-negative scale before
    multiplicative fusion, spec 1.5 (``reward/quality_transform=none | group_min | affine |
    sigmoid``)."""
    std_normalize: bool = False
    """Divide advantages by the group std (GRPO's form); DARLING does not (spec 1.6)."""


@dataclass
class OptimSpec:
    """Policy optimisation (spec sections 1.7 to 1.9)."""

    optimizer: str = "adamw"
    """adamw | adamw_8bit (bitsandbytes, GPU only)."""
    lr: float = "${model.lr}"  # type: ignore[assignment]
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    clip_low: float = DEFAULT_CLIP
    clip_high: float = DEFAULT_CLIP
    dual_clip: float | None = DEFAULT_DUAL_CLIP
    kl_coef: float = 0.0
    """Weight of the k3 KL to the frozen initial policy (spec: 0.001 non-verifiable, 0 math)."""
    ppo_epochs: int = 1
    mini_batches: int = 1
    """Optimiser steps per epoch over one rollout batch."""
    micro_batch_size: int = 0
    """Sequences per forward/backward (gradient accumulation); 0 = the whole mini-batch."""
    importance_cap: float | None = None
    """Truncated importance sampling for an engine that samples apart from the policy
    (rollout=vllm): each token's loss is weighted by ``min(pi_old / pi_sampler, cap)``
    (docs/training.md). None: off; the gap is logged as ``rollout/sampler/*`` anyway."""


@dataclass
class TrainerSpec:
    """Lightning ``Trainer`` settings (Lightning's names) plus checkpointing."""

    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_steps: int = 30
    """Optimiser steps (= rollout steps when optim.ppo_epochs * optim.mini_batches == 1)."""
    log_every_n_steps: int = 1
    enable_progress_bar: bool = True
    checkpoint_every_n_steps: int = 10
    num_sanity_val_steps: int = 0


@dataclass
class SaveSpec:
    """How the final policy (``<run dir>/policy``) is written."""

    dtype: str | None = None
    """None: the model's dtype (``model.dtype``: bfloat16 for the hub-sized models); float32
    writes the float32 master weights as they are."""
    max_shard_gb: float = DEFAULT_MAX_SHARD_GB
    """Largest safetensors file, GB (1e9 bytes); a larger policy is split into
    ``model-0000i-of-0000n.safetensors`` with ``model.safetensors.index.json``. Rank 0 holds at
    most one such shard while writing."""


@dataclass
class TrainConfig:
    """The whole training run."""

    model: ModelSpec = field(default_factory=ModelSpec)
    reward: RewardSpec = field(default_factory=RewardSpec)
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    data: DataSpec = field(default_factory=DataSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    trainer: TrainerSpec = field(default_factory=TrainerSpec)
    save: SaveSpec = field(default_factory=SaveSpec)
    quality: Any = MISSING
    diversity: Any = MISSING
    classifier: Any = MISSING
    logger: Any = None
    seed: int = 0
    experiment: str | None = None
    """The ``+experiment=<name>`` preset in use (each preset sets it), so that a preset run
    without its prompt file fails naming what to pass."""
    run_name: str = MISSING
    ckpt_path: str | None = None
    """None: fresh run (refused if the run dir has checkpoints); last: resume the run dir's last
    checkpoint; auto: resume it if it exists, else start fresh; or a path to a checkpoint file."""
    resume_any_config: bool = False
    """Resume ``ckpt_path`` even when the checkpoint was trained under other settings (another
    seed, reward, model...); without it such a resume is refused, naming the settings."""
    max_failed_steps: int = 3
    """Stop when the quality function failed (None) on every rollout this many steps in a row
    (an unreachable judge); 0 never stops."""
    log_rollouts: bool = True
    """Write every rollout with its scores to <run dir>/rollouts/rank<r>.jsonl."""
    rollout_table_every_n_steps: int = 10
    """Every this many steps (and at the last), loggers that take tables (logger=wandb) get the
    table ``rollouts/table`` with one more group's rollouts (prompt, response, quality, class,
    Div, reward, advantage); 0: never."""


SWAPPED_GROUPS = ("classifier", "quality", "diversity", "rollout")
"""Groups whose choice on the command line goes into ``run_name`` (``-classifier_answer_set``):
the reward, weight, seed and model are in it already, so every swap the README's Usage shows
gets its own run directory."""


def swapped_groups(*, _root_: Any = None) -> str:
    """``-<group>_<choice>`` for each of ``SWAPPED_GROUPS`` chosen on the command line (Hydra's
    task overrides), in that order; ``""`` outside a Hydra app (``compose`` in tests) and for a
    choice made by a config file (``reward=darling_answer`` brings ``classifier=answer_set`` and
    keeps its old name). The ``run_name`` resolver ``${darling_swaps:}``.

    >>> swapped_groups()
    ''
    """
    overrides = _task_overrides(_root_)
    chosen = {}
    for override in overrides:
        key, sep, value = str(override).partition("=")
        key = key.lstrip("+~")
        if sep and key in SWAPPED_GROUPS and value and "," not in value:
            chosen[key] = value.replace("/", "_")
    return "".join(f"-{group}_{chosen[group]}" for group in SWAPPED_GROUPS if group in chosen)


def _task_overrides(root: Any) -> list[str]:
    """The command line's overrides: from the config's own ``hydra`` node while Hydra composes,
    else from the running Hydra job, else none."""
    node = None
    if root is not None and "hydra" in root:
        node = OmegaConf.select(root, "hydra.overrides.task", throw_on_resolution_failure=False)
    if node is None:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return []
        node = HydraConfig.get().overrides.task
    return list(node or [])


def register_configs() -> None:
    """Register the schema so ``conf/config.yaml`` can name it first in its defaults list, and
    the ``darling_swaps`` resolver of ``run_name``."""
    ConfigStore.instance().store(name="darling_schema", node=TrainConfig)
    if not OmegaConf.has_resolver("darling_swaps"):
        OmegaConf.register_new_resolver("darling_swaps", swapped_groups)
