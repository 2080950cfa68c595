"""The memory plan's shell: read a run's numbers from its config and its policy built on the meta
device, compute ``darling.memory_plan.memory_plan`` and log it (rank 0) before any weights load."""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig

from darling.memory_plan import MemoryPlan, ModelShape, PlanSettings, memory_plan
from darling.models.loading import (
    DTYPES,
    checkpoint_dir,
    load_policy,
    params_on_meta,
    transformers_model,
)
from darling.train.strategies import FSDP2Strategy, decoder_layers

log = logging.getLogger(__name__)

REWARD_MODEL_TARGET = "darling.quality.RewardModelQuality"


def model_shape(policy: torch.nn.Module) -> ModelShape:
    """Counts of ``policy`` (built on the meta device or not; nothing is read)."""
    params = dict(policy.named_parameters())  # a tied weight once
    base = transformers_model(policy)
    layers = decoder_layers(base)
    per_layer = [sum(p.numel() for p in layer.parameters()) for layer in layers]
    total = sum(p.numel() for p in params.values())
    return ModelShape(
        params=total,
        trainable=sum(p.numel() for p in params.values() if p.requires_grad),
        layers=len(layers),
        hidden=int(base.config.hidden_size),
        vocab=int(base.config.vocab_size),
        largest_unit=max([*per_layer, total - sum(per_layer)]),
        largest_tensor=max(p.numel() for p in params.values()),
    )


def plan_settings(cfg: DictConfig, strategy: Any, ranks: int, classifier: Any = None,
                  device_bytes: int | None = None) -> PlanSettings:
    """The ``PlanSettings`` of a composed training config."""
    sharded = isinstance(strategy, FSDP2Strategy)
    sharding = strategy.sharding if sharded else None
    compute = DTYPES[sharding.param_dtype].itemsize if sharding and sharding.param_dtype else 4
    ro, o = cfg.rollout, cfg.optim
    q = _reward_model_config(cfg.quality)
    rollouts = cfg.data.prompts_per_step * ro.n_per_prompt
    reward_model = q is not None
    return PlanSettings(
        ranks=ranks,
        sharded=sharded,
        load_bytes=DTYPES[cfg.model.dtype].itemsize,
        read_files=sharded and checkpoint_dir(cfg.model) is not None,
        compute_bytes=compute,
        reference=o.kl_coef > 0 and not cfg.model.lora.enabled,
        cpu_offload=bool(sharding and sharding.cpu_offload),
        engine_fraction=ro.gpu_memory_utilization if ro.engine == "vllm" and device_bytes else 0.0,
        engine_weight_bytes=DTYPES[ro.dtype].itemsize,
        engine_sleeps=ro.enable_sleep_mode is not False,
        device_bytes=device_bytes,
        reward_model_params=reward_model_params(q) if reward_model else 0,
        reward_model_bytes=DTYPES[q.get("dtype", "float32")].itemsize if reward_model else 2,
        reward_model_placement=str(q.get("placement", "replicated")) if reward_model else
        "replicated",
        classifier_params=module_params(classifier),
        micro_batch=o.micro_batch_size or -(-rollouts // o.mini_batches),
        seq_len=cfg.data.max_prompt_tokens + ro.max_new_tokens,
        response_len=ro.max_new_tokens,
        gradient_checkpointing=bool(cfg.model.gradient_checkpointing),
        max_shard_bytes=int(cfg.save.max_shard_gb * 1e9),
        save_bytes=DTYPES[cfg.save.dtype or cfg.model.dtype].itemsize,
    )


def _reward_model_config(quality: Any) -> DictConfig | None:
    """The ``RewardModelQuality`` node of a quality config (itself, or the one a wrapper such as
    ``BinnedQuality`` holds under ``quality``), or None."""
    for node in (quality, quality.get("quality") if isinstance(quality, DictConfig) else None):
        if isinstance(node, DictConfig) and str(node.get("_target_", "")) == REWARD_MODEL_TARGET:
            return node
    return None


def reward_model_params(quality: DictConfig) -> int:
    """Parameters of a ``quality=reward_model`` checkpoint, from its config on the meta device
    (0 when its config cannot be read here: the plan then leaves it out and says so)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    trust = bool(quality.get("trust_remote_code", False))
    try:
        config = AutoConfig.from_pretrained(quality.path, trust_remote_code=trust)
    except (OSError, ValueError) as err:
        log.warning("memory plan: the reward model's config is not readable (%s); left out", err)
        return 0
    with params_on_meta():
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust)
    return sum(p.numel() for p in model.parameters())


def module_params(obj: Any) -> int:
    """Parameters of ``obj`` if it is a torch module, else of the modules among its attributes
    (a classifier object holding its encoder); 0 for anything else."""
    if isinstance(obj, torch.nn.Module):
        return sum(p.numel() for p in obj.parameters())
    modules = {id(v): v for v in vars(obj).values() if isinstance(v, torch.nn.Module)} if hasattr(
        obj, "__dict__") else {}
    return sum(module_params(m) for m in modules.values())


def device_memory(accelerator: str) -> int | None:
    """Bytes of one GPU, or None on the CPU (processes share the host: no per-device limit)."""
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(0).total_memory)
    return None


def log_plan(plan: MemoryPlan, ranks: int) -> None:
    """Log the plan on rank 0 (into the run's log, like the rest of the run's story): the table,
    then what to change for each phase over the device."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:
        return
    log.info("memory plan per device (%d ranks; estimate):\n%s", ranks, plan.table())
    if plan.over:
        log.warning("the memory plan exceeds the device in %s; turn one of:\n  %s",
                    ", ".join(plan.over), "\n  ".join(plan.advice))


def plan_run(cfg: DictConfig, strategy: Any, ranks: int, policy: torch.nn.Module | None,
             classifier: Any = None) -> MemoryPlan:
    """Compute and log the plan of this run; ``policy``: the policy built on the meta device
    (None: built here, on the meta device, from ``cfg.model``)."""
    if policy is None:
        policy = load_policy(cfg.model, seed=cfg.seed, on_meta=True)[0]
    plan = memory_plan(
        model_shape(policy),
        plan_settings(cfg, strategy, ranks, classifier, device_memory(cfg.trainer.accelerator)),
    )
    log_plan(plan, ranks)
    return plan
