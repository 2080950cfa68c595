"""The DARLING LightningModule: owns policy, frozen reference and partition classifier.

The rollout callback (``darling.train.rollouts``) samples each step's rollouts with the engine
and keeps the engine on the current policy; ``training_step`` starts from those rollouts and
reads as the algorithm (spec section 1): quality -> partition -> diversity -> fused reward ->
group advantages -> PPO-clipped token-mean loss (+ k3 KL), with
``ppo_epochs x mini_batches`` optimiser steps per rollout batch (manual optimisation). The math
lives in the pure core (``darling.fusion``, ``advantages``, ``losses``, ...); this module wires
it and logs the metrics the core returns, under namespaced keys.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.tensor import DTensor

from darling.advantages import group_advantages
from darling.diversity import class_metrics
from darling.errors import NoQualitySignal
from darling.logprobs import response_logprobs
from darling.losses import (
    k3_kl,
    masked_token_mean,
    ppo_clip_loss,
    sampler_gap,
    truncated_importance_weights,
)
from darling.models.frozen import check_frozen, frozen_state, weights_fingerprint
from darling.models.loading import transformers_model
from darling.partition import partition_rollouts
from darling.quality.base import score_quality
from darling.rewards import training_reward
from darling.rollout.base import Rollouts, Samples
from darling.train.data import RolloutBatch
from darling.train.strategies import (
    FSDP2Strategy,
    fill_shards,
    fill_shards_from_files,
    is_on_meta,
    shard_model,
)

log = logging.getLogger(__name__)

PROGRESS_BAR = {
    "quality": "reward/quality_mean",
    "reward": "reward/mean",
    "classes": "diversity/classes_per_group",
    "loss": "loss/total",
}
"""Progress-bar name -> logged metric shown next to it."""


class DarlingModule(L.LightningModule):
    def __init__(
        self,
        policy: torch.nn.Module,
        tokenizer: Any,
        classifier: Any,
        quality_fn: Any,
        diversity_fn: Any,
        reward: Any,
        optim: Any,
        temperature: float = 1.0,
        max_failed_steps: int = 3,
        run_meaning: dict[str, Any] | None = None,
        policy_weights: Callable[[], torch.nn.Module] | None = None,
        policy_files: str | Path | None = None,
    ):
        """Under ``trainer=fsdp`` with ``policy`` built on the meta device
        (``load_policy(..., on_meta=True)``), ``configure_model`` fills every rank's shards from
        ``policy_files`` (a safetensors checkpoint directory: each rank reads its own rows) or,
        without one, from ``policy_weights`` (what loads the full policy: rank 0 calls it once
        and sends each weight)."""
        super().__init__()
        self.automatic_optimization = False
        self.policy, self.tokenizer, self.classifier = policy, tokenizer, classifier
        self.policy.train()  # from_pretrained returns eval mode; generation toggles it itself
        self.quality_fn, self.diversity_fn = quality_fn, diversity_fn
        self.reward_spec, self.optim_spec = reward, optim
        self.temperature = temperature
        """The sampling temperature: log-probs are taken under the distribution sampled."""
        self._policy_weights, self._policy_files = policy_weights, policy_files
        self.rollout_step = 0
        self.max_failed_steps, self._failed_streak = max_failed_steps, 0
        self.steps_run, self.rows_scored = 0, 0  # this process: see never_scored
        self.run_meaning = run_meaning  # the settings a resume must keep (resume.run_meaning)
        # A tuple keeps the frozen reference out of the module tree: it is not trained, not
        # checkpointed (it is the initial policy, rebuilt on resume) and not in the optimiser.
        self._frozen = (self._make_reference(),) if optim.kl_coef > 0 else (None,)
        self._fingerprint: list[float] | None = None

    @property
    def _reference(self) -> torch.nn.Module | None:
        return self._frozen[0]

    # -- the algorithm -----------------------------------------------------------------------
    def training_step(self, batch: RolloutBatch, batch_idx: int) -> dict[str, Any]:
        """One rollout step on the rollouts ``RolloutCallback`` sampled into ``batch``: the
        paper's steps 2-6, then the PPO update. Returns the step's metrics (``StepMetrics`` logs
        them) and one record per rollout (``RolloutLog``).

        ``N`` rollouts; the ``K`` whose quality was scored (``keep``) go on to partition,
        diversity, reward and advantage; the rest get advantage 0 and are masked out of the loss.
        """
        timer = _Timer()
        timer.seconds.update(batch.seconds)
        rollouts = batch.rollouts
        samples = Samples.of(rollouts, batch.rows)
        with timer("quality"):
            quality, quality_metrics = self._score_quality(samples)  # 2. (N,), NaN: failed
        keep = np.flatnonzero(~np.isnan(quality))  # (K,)
        kept = samples.subset(keep)
        with timer("partition"):
            labels, pair_metrics = self._partition(kept)  # 3. classes of equivalent responses
            diversity, diversity_metrics = self._diversity(kept, labels, quality[keep])  # 4.
        rewards, reward_metrics = self._reward(quality[keep], diversity, kept.group_ids)  # 5.
        advantages, advantage_metrics = self._advantage(rewards, kept.group_ids, keep,
                                                        len(samples.texts))  # 6.
        with timer("update"):
            loss_metrics, logp_metrics = self._update(
                rollouts, advantages.to(self.device), _token_mask(rollouts, keep)
            )
        self.rollout_step = batch.step + 1
        scored = ScoredBatch(
            batch.step, samples, quality, keep, labels, diversity, rewards, advantages,
            metrics={"reward": {**reward_metrics, **quality_metrics}, "pairs": pair_metrics,
                     "diversity": diversity_metrics, "advantage": advantage_metrics},
        )
        metrics = _step_metrics(scored, rollouts.num_tokens, loss_metrics, logp_metrics,
                                timer.seconds)
        for short, key in PROGRESS_BAR.items():
            self.log(short, metrics[key], prog_bar=True, logger=False)
        return {"rollouts": scored.records(), "metrics": metrics}

    def _score_quality(self, samples: Samples) -> tuple[np.ndarray, dict[str, float]]:
        """``(N,)`` quality of each rollout (NaN where the quality function failed) and its
        metrics; stops the run after ``max_failed_steps`` steps with none scored."""
        quality, metrics = score_quality(
            self.quality_fn, [r.prompt for r in samples.rows], samples.texts, samples.rows
        )
        self._check_failed_streak(int(np.count_nonzero(~np.isnan(quality))))
        return quality, metrics

    def _check_failed_streak(self, scored_rows: int) -> None:
        """Stop when no rollout of any process could be scored for ``max_failed_steps`` steps in
        a row (an unreachable judge, a missing API key): every advantage would be 0, the run
        would end with zero loss and save an untrained policy."""
        if self.trainer.world_size > 1:
            total = torch.tensor(float(scored_rows), device=self.device)
            scored_rows = int(self.trainer.strategy.reduce(total, reduce_op="sum").item())
        self._failed_streak = 0 if scored_rows else self._failed_streak + 1
        self.steps_run += 1
        self.rows_scored += scored_rows
        if self.max_failed_steps and self._failed_streak >= self.max_failed_steps:
            raise NoQualitySignal(
                f"{self._quality_failure()} on every rollout for {self._failed_streak} steps in "
                "a row: is the judge reachable and its API key set? Stopping instead of training "
                f"on no signal (max_failed_steps={self.max_failed_steps}; 0 never stops)"
            )

    @property
    def never_scored(self) -> bool:
        """Every rollout of every step this process ran failed quality (``max_failed_steps`` > 0
        only): a run shorter than ``max_failed_steps`` steps must not end as "trained"."""
        return bool(self.max_failed_steps) and self.steps_run > 0 and self.rows_scored == 0

    def check_scored(self) -> None:
        """Raise ``NoQualitySignal`` if ``never_scored`` (``SavePolicy`` asks before writing)."""
        if self.never_scored:
            raise NoQualitySignal(
                f"{self._quality_failure()} on every rollout of all {self.steps_run} step(s): "
                "nothing was learned, so no policy was written. Is the judge reachable and its "
                "API key set? (The checkpoint is kept; fix the judge and resume with "
                "ckpt_path=last)"
            )

    def _quality_failure(self) -> str:
        name = getattr(self.quality_fn, "__name__", type(self.quality_fn).__name__)
        summary = getattr(self.quality_fn, "failure_summary", lambda: "")()
        causes = f"; {summary}" if summary else ""
        return f"quality function {name!r} failed (returned None{causes})"

    def _partition(self, kept: Samples) -> tuple[np.ndarray, dict[str, float]]:
        """``(K,)`` class of each scored rollout within its group, and the pair metrics."""
        return partition_rollouts(kept.texts, kept.group_ids, kept.rows, self.classifier)

    def _diversity(self, kept: Samples, labels: np.ndarray, quality: np.ndarray
                   ) -> tuple[np.ndarray, dict[str, float]]:
        """``(K,)`` Div_i of each scored rollout, and the diversity function's metrics."""
        return self.diversity_fn(kept.texts, kept.group_ids, labels=labels, quality=quality)

    def _reward(self, quality: np.ndarray, diversity: np.ndarray, group_ids: list[Any]
                ) -> tuple[np.ndarray, dict[str, float]]:
        """``(K,)`` fused reward R_i = fuse(q_i, Div_i) (``darling.rewards.training_reward``)."""
        return training_reward(quality, diversity, group_ids, self.reward_spec)

    def _advantage(self, rewards: np.ndarray, group_ids: list[Any], keep: np.ndarray, n: int
                   ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(N,)`` A_i = R_i - group mean for the scored rollouts ``keep``, 0 for the rest."""
        advantages = torch.zeros(n)
        advantages[keep], metrics = group_advantages(
            torch.as_tensor(rewards, dtype=torch.float32), group_ids,
            self.reward_spec.std_normalize,
        )
        return advantages, metrics

    def _update(
        self, rollouts: Rollouts, advantages: torch.Tensor, token_mask: torch.Tensor
    ) -> tuple[dict[str, float], dict[str, float]]:
        """``ppo_epochs x mini_batches`` optimiser steps on one rollout batch. Returns the mean
        loss metrics and the log-prob metrics of the sampled responses before the update:
        ``logp_mean`` (their token-mean log-probability, minus an entropy estimate: it rises as
        the policy sharpens) and, when the engine reports its own log-probs, ``sampler/*``: how
        far they are from the trainer's (``darling.losses.sampler_gap``).

        ``logp_old`` and ``logp_ref`` are computed ``optim.micro_batch_size`` sequences at a
        time, like the gradient forwards, so no forward sees more than a micro-batch. With one
        epoch and one mini-batch the update is on-policy: ``logp_old`` is then the detached
        log-probability of the gradient forward itself (as TRL does), not a separate forward."""
        spec, opt = self.optim_spec, self.optimizers()
        ids, attn = rollouts.input_ids.to(self.device), rollouts.attention_mask.to(self.device)
        start = rollouts.response_start
        uses_reference = self._reference is not None or self._uses_lora_reference()
        on_policy = self._on_policy()
        with torch.no_grad():
            logp_old, logp_ref = [], []
            for chunk in _micro_batches(np.arange(len(ids)), spec.micro_batch_size):
                if not on_policy:
                    logp_old.append(self._logprobs(self.policy, ids[chunk], attn[chunk], start,
                                                   self.temperature))
                if uses_reference:
                    logp_ref.append(self._reference_logprobs(ids[chunk], attn[chunk], start,
                                                             self.temperature))
        batch = UpdateBatch(
            input_ids=ids, attention_mask=attn, response_start=start,
            token_mask=token_mask.to(self.device), advantages=advantages,
            logp_old=None if on_policy else torch.cat(logp_old),
            logp_ref=torch.cat(logp_ref) if uses_reference else None,
            sampler_logprobs=(None if rollouts.sampler_logprobs is None
                              else rollouts.sampler_logprobs.to(self.device)),
        )
        sums: dict[str, float] = {}
        updates = 0
        for _ in range(spec.ppo_epochs):
            for mb in np.array_split(np.arange(len(ids)), spec.mini_batches):
                stats, logp = self._minibatch_step(opt, batch, mb)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                updates += 1
        # on-policy: the one mini-batch's gradient forward gave the sampling policy's log-probs
        logp_old = logp if on_policy else batch.logp_old
        logp_metrics = {"logp_mean": float(masked_token_mean(logp_old, batch.token_mask))}
        if batch.sampler_logprobs is not None:
            gap = sampler_gap(logp_old, batch.sampler_logprobs, batch.token_mask)
            logp_metrics.update({f"sampler/{k}": v for k, v in gap.items()})
        return {k: v / updates for k, v in sums.items()}, logp_metrics

    def _minibatch_step(self, opt: Any, batch: UpdateBatch, rows: np.ndarray
                        ) -> tuple[dict[str, float], torch.Tensor]:
        """One optimiser step over the rollouts ``rows`` of ``batch``. Returns the loss metrics
        (token-means over the mini-batch) and ``(len(rows), T)`` the detached log-probs of its
        gradient forwards. Without ``batch.logp_old`` (on-policy) those log-probs are
        ``pi_old``. With ``optim.importance_cap`` and the engine's log-probs, each token's loss
        is weighted by ``min(pi_old / pi_sampler, cap)`` (``truncated_importance_weights``)."""
        spec, mask = self.optim_spec, batch.token_mask
        # Token-mean over the mini-batch of *all* processes: DDP averages gradients over ranks,
        # so each rank weights its loss by world_size * local tokens / global tokens.
        world = self.trainer.world_size
        global_tokens = self.trainer.strategy.reduce(
            mask[rows].sum().to(torch.float32), reduce_op="sum"
        )
        mb_tokens = float(global_tokens.clamp_min(1)) / world
        corrected = spec.importance_cap is not None and batch.sampler_logprobs is not None
        stats = {"policy": 0.0, "kl": 0.0, "total": 0.0, "clip_frac": 0.0, "approx_kl": 0.0,
                 "ratio_mean": 0.0}
        if corrected:
            stats["importance_weight_mean"] = 0.0
        forwards = []
        opt.zero_grad()
        for chunk in _micro_batches(rows, spec.micro_batch_size):
            share = float(mask[chunk].sum()) / mb_tokens  # token-mean over the whole mini-batch
            logp = self._logprobs(self.policy, batch.input_ids[chunk],
                                  batch.attention_mask[chunk], batch.response_start,
                                  self.temperature)
            forwards.append(logp.detach())
            logp_old = forwards[-1] if batch.logp_old is None else batch.logp_old[chunk]
            weights = (truncated_importance_weights(logp_old, batch.sampler_logprobs[chunk],
                                                    spec.importance_cap) if corrected else None)
            policy_loss, clip_stats = ppo_clip_loss(
                logp, logp_old, batch.advantages[chunk], mask[chunk],
                spec.clip_low, spec.clip_high, spec.dual_clip, token_weights=weights,
            )
            kl = (
                k3_kl(logp, batch.logp_ref[chunk], mask[chunk])
                if batch.logp_ref is not None
                else torch.zeros((), device=self.device)
            )
            loss = policy_loss + spec.kl_coef * kl
            self.manual_backward(loss * share)
            stats["policy"] += float(policy_loss.detach()) * share
            stats["kl"] += float(kl.detach()) * share
            stats["total"] += float(loss.detach()) * share
            for key in ("clip_frac", "approx_kl", "ratio_mean"):
                stats[key] += clip_stats[key] * share
            if corrected:
                stats["importance_weight_mean"] += float(
                    masked_token_mean(weights, mask[chunk])) * share
        # Under FSDP2 the gradients are DTensor shards: clip_grad_norm_ reduces the shard norms
        # to the global norm before clipping, and full_tensor() gives that global value.
        grad_norm = torch.nn.utils.clip_grad_norm_(self._trainable(), spec.grad_clip)
        if isinstance(grad_norm, DTensor):
            grad_norm = grad_norm.full_tensor()
        opt.step()
        stats["grad_norm"] = float(grad_norm)
        return stats, torch.cat(forwards)

    def _on_policy(self) -> bool:
        """One epoch over one mini-batch: the policy that sampled is the one being updated."""
        return self.optim_spec.ppo_epochs == 1 and self.optim_spec.mini_batches == 1

    # -- models ----------------------------------------------------------------------------
    def _logprobs(self, model, ids, attn, start, temperature) -> torch.Tensor:
        return response_logprobs(model, ids, attn, start, temperature)

    def _uses_lora_reference(self) -> bool:
        return self.optim_spec.kl_coef > 0 and hasattr(self.policy, "disable_adapter")

    def _make_reference(self) -> torch.nn.Module | None:
        if hasattr(self.policy, "disable_adapter"):
            return None  # LoRA: the reference is the base model with adapters disabled
        reference = copy.deepcopy(self.policy).eval().requires_grad_(False)
        return reference

    def _reference_logprobs(self, ids, attn, start, temperature) -> torch.Tensor:
        if self._reference is None:
            with self.policy.disable_adapter():
                return self._logprobs(self.policy, ids, attn, start, temperature)
        return self._logprobs(self._reference, ids, attn, start, temperature)

    def _trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.policy.parameters() if p.requires_grad]

    def configure_model(self) -> None:
        """Under ``trainer=fsdp``: shard the policy (and a full-parameter reference) per decoder
        layer over the data-parallel mesh (``darling.train.strategies``). A policy built on the
        meta device is then filled from its checkpoint's files, each rank reading its own rows
        (``fill_shards_from_files``), or from one read of the weights on rank 0
        (``fill_shards``); the reference, the initial policy, is filled the same way."""
        strategy = self.trainer.strategy
        if not isinstance(strategy, FSDP2Strategy):
            return
        mesh = self.device_mesh["data_parallel"]
        empty = is_on_meta(self.policy)
        models = [m for m in (self.policy, self._reference) if m is not None]
        for model in models:
            shard_model(model, mesh, strategy.sharding)
        if not empty:
            return
        if self._policy_files is not None:
            fill_shards_from_files(models, self._policy_files)
            return
        if self._policy_weights is None:
            raise ValueError("a policy built on the meta device needs policy_weights to fill it")
        source: dict[str, torch.Tensor] = {}
        if self.trainer.is_global_zero:
            full = self._policy_weights()
            source = transformers_model(full).state_dict()
            del full
            gc.collect()  # peft's wrapper holds reference cycles: free the model, keep the dict
        fill_shards(models, source)

    def on_fit_start(self) -> None:
        if self._reference is not None:
            self._reference.to(self.device)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        spec = self.optim_spec
        params = self._trainable()
        if spec.optimizer == "adamw_8bit":
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, lr=spec.lr, weight_decay=spec.weight_decay)
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)

    # -- checkpoint state beyond Lightning's own ----------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add the data position and the run's settings; leave out frozen weights (a LoRA
        policy's base), which are rebuilt from the model spec on resume like the reference model,
        and keep their fingerprint so that a resume on other base weights fails instead of
        silently training another model. Under sharding the checkpoint keeps every weight (its
        loader expects them all)."""
        frozen = frozen_state(self.policy)
        checkpoint["darling"] = {
            "rollout_step": self.rollout_step,
            "frozen_fingerprint": self._frozen_fingerprint(),
            "config": self.run_meaning,  # checked before a resume (resume.check_checkpoint_config)
        }
        if not isinstance(self.trainer.strategy, ModelParallelStrategy):
            for name in frozen:
                checkpoint["state_dict"].pop(f"policy.{name}", None)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["darling"]
        self.rollout_step = int(state["rollout_step"])
        saved = state.get("frozen_fingerprint")
        check_frozen(saved, self._frozen_fingerprint())
        if saved is None:  # an older checkpoint holds its frozen weights: fingerprint them later
            self._fingerprint = None
        if "state_dict" in checkpoint:  # a sharded load has already restored every weight
            for name, value in frozen_state(self.policy).items():
                checkpoint["state_dict"].setdefault(f"policy.{name}", value)

    def _frozen_fingerprint(self) -> list[float]:
        """``weights_fingerprint`` of the frozen weights, computed once: they never change."""
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(frozen_state(self.policy).values())
        return self._fingerprint


@dataclass
class UpdateBatch:
    """What the PPO update of one rollout batch reads, on the module's device: ``B`` rollouts,
    ``L`` prompt + response positions, ``T`` response tokens."""

    input_ids: torch.Tensor
    """``(B, L)`` left-padded prompt then response."""
    attention_mask: torch.Tensor
    """``(B, L)``."""
    response_start: int
    """Position of the first response token."""
    token_mask: torch.Tensor
    """``(B, T)`` response tokens of the scored rollouts (the excluded ones zeroed)."""
    advantages: torch.Tensor
    """``(B,)`` A_i."""
    logp_old: torch.Tensor | None
    """``(B, T)`` log-probs under the policy that sampled; None on-policy (one epoch, one
    mini-batch): the gradient forward's own, detached, as TRL does."""
    logp_ref: torch.Tensor | None
    """``(B, T)`` log-probs under the frozen reference; None without a KL term."""
    sampler_logprobs: torch.Tensor | None
    """``(B, T)`` the engine's own log-probs of its samples; None for an engine that samples
    from the policy itself."""


@dataclass
class ScoredBatch:
    """One rollout step's results, in the order of the algorithm (spec section 1).

    ``N`` rollouts (prompts x n); ``K`` of them were scored (``keep``), the rest failed quality
    and are excluded from partition, diversity, reward and loss (advantage 0, masked out).
    """

    step: int
    samples: Samples
    """The ``N`` rollouts' texts, group ids and prompt rows."""
    quality: np.ndarray
    """``(N,)`` raw scores, NaN where the quality function failed."""
    keep: np.ndarray
    """``(K,)`` indices of the scored rollouts."""
    labels: np.ndarray
    """``(K,)`` class of each scored rollout within its group."""
    diversity: np.ndarray
    """``(K,)`` Div_i."""
    rewards: np.ndarray
    """``(K,)`` fused reward R_i."""
    advantages: torch.Tensor
    """``(N,)`` A_i, 0 for excluded rollouts."""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """Core metrics by stage: reward (quality included), pairs, diversity, advantage."""

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per rollout of the step (excluded rows carry nulls)."""
        position = {int(i): j for j, i in enumerate(self.keep)}
        records = []
        for i, text in enumerate(self.samples.texts):
            j = position.get(i)
            records.append({
                "step": self.step,
                "group_id": self.samples.group_ids[i],
                "prompt_id": self.samples.rows[i].id,
                "response": text,
                "quality": None if j is None else float(self.quality[i]),
                "class": None if j is None else int(self.labels[j]),
                "diversity": None if j is None else float(self.diversity[j]),
                "reward": None if j is None else float(self.rewards[j]),
                "advantage": float(self.advantages[i]),
            })
        return records


def _token_mask(rollouts: Rollouts, keep: np.ndarray) -> torch.Tensor:
    """``(N, T)`` response mask with the rollouts not in ``keep`` zeroed."""
    mask = rollouts.response_mask.clone()
    mask[np.setdiff1d(np.arange(len(rollouts.texts)), keep)] = 0
    return mask


def _step_metrics(
    scored: ScoredBatch, tokens: int, loss: dict[str, float], logp: dict[str, float],
    seconds: dict[str, float],
) -> dict[str, float]:
    """The step's metrics under namespaced keys (``reward/``, ``partition/``, ``diversity/``,
    ``advantage/``, ``loss/``, ``time/``, ``rollout/``); ``tokens``: the response tokens sampled."""
    texts = len(scored.samples.texts)
    return {
        **_prefixed("reward", scored.metrics["reward"]),
        **_prefixed("partition", scored.metrics["pairs"]),
        **_prefixed("diversity", {
            **class_metrics(scored.labels, scored.samples.subset(scored.keep).group_ids),
            **scored.metrics["diversity"],
            "score_mean": _mean(scored.diversity),
        }),
        **_prefixed("advantage", scored.metrics["advantage"]),
        **_prefixed("loss", loss),
        **_prefixed("time", seconds),
        "rollout/tokens": float(tokens),
        "rollout/response_len_mean": tokens / max(texts, 1),
        "rollout/tokens_per_s": tokens / max(seconds["generate"], 1e-9),
        "rollout/step": float(scored.step + 1),
        **_prefixed("rollout", logp),
    }


def _mean(values: Any) -> float:
    """Mean, NaN for no values (a step whose every quality failed), without numpy's warning."""
    return float(np.mean(values)) if len(values) else float("nan")


def _micro_batches(rows: np.ndarray, size: int) -> list[np.ndarray]:
    """``rows`` split into consecutive chunks of at most ``size`` (0: one chunk). Every rank gets
    the same number of chunks, as FSDP's collective forwards need."""
    return np.array_split(rows, max(1, -(-len(rows) // size))) if size else [rows]


def _prefixed(namespace: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{namespace}/{k}": float(v) for k, v in metrics.items()}


class _Timer:
    """Wall-clock seconds per named phase of one step."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
