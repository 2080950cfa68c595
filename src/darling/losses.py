"""Policy-gradient losses (spec sections 1.7 and 1.8). Shapes: ``B`` sequences, ``T`` tokens."""

from __future__ import annotations

import math

import torch

DEFAULT_CLIP = 0.2
"""PPO's epsilon (spec section 1.7): the ratio is clipped to [1 - 0.2, 1 + 0.2]."""

DEFAULT_DUAL_CLIP = 3.0
"""Dual-clip bound c on the loss of a negative advantage (spec section 1.7, verl's default)."""

KL_VALUE_CLAMP = 10.0
"""Spec section 1.8 (authors' code, verl's ``low_var_kl``): the k3 value is clamped to [-10, 10]."""

KL_LOG_RATIO_CLAMP = 20.0
"""Overflow guard on ``d`` before ``exp`` (as verl does); inactive for any sane policy."""


def masked_token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over all response tokens of the batch ("token-mean"): ``sum(v * m) / sum(m)``."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def ppo_clip_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = DEFAULT_CLIP,
    clip_high: float = DEFAULT_CLIP,
    dual_clip: float | None = DEFAULT_DUAL_CLIP,
    token_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clipped surrogate, token-mean over the batch.

    Per token: ``rho = exp(logp_new - logp_old)``,
    ``l = max(-A * rho, -A * clip(rho, 1 - clip_low, 1 + clip_high))``; with dual clip ``c`` and
    ``A < 0``: ``l = min(l, -A * c)`` (bounds the loss when rho explodes on a negative advantage);
    with ``token_weights`` ``w`` (constants, e.g. ``truncated_importance_weights``): ``w * l``.
    ``logp_*``, ``mask``, ``token_weights``: ``(B, T)``; ``advantages``: ``(B,)`` (one per
    sequence). Returns the scalar loss and metrics (``clip_frac``, ``approx_kl`` = token-mean of
    ``0.5 * (log rho)^2``, ``ratio_mean``).
    """
    adv = advantages.to(logp_new.dtype).unsqueeze(-1)  # (B, 1)
    log_ratio = logp_new - logp_old  # (B, T)
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        per_token = torch.where(adv < 0, torch.minimum(per_token, -adv * dual_clip), per_token)
    if token_weights is not None:
        per_token = per_token * token_weights.detach()
    loss = masked_token_mean(per_token, mask)
    with torch.no_grad():
        metrics = {
            "clip_frac": float(masked_token_mean((clipped > unclipped).to(ratio.dtype), mask)),
            "approx_kl": float(masked_token_mean(0.5 * log_ratio**2, mask)),
            "ratio_mean": float(masked_token_mean(ratio, mask)),
        }
    return loss, metrics


def k3_kl(logp_new: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(policy || reference), token-mean:
    ``k3 = clamp(exp(d) - d - 1, -10, 10)`` with ``d = logp_ref - logp_new`` (``d`` guarded to
    [-20, 20] against overflow). ``(B, T)`` -> scalar. Non-negative, zero iff the two
    log-probabilities agree.
    """
    d = torch.clamp(logp_ref - logp_new, -KL_LOG_RATIO_CLAMP, KL_LOG_RATIO_CLAMP)
    k3 = torch.clamp(torch.exp(d) - d - 1.0, -KL_VALUE_CLAMP, KL_VALUE_CLAMP)
    return masked_token_mean(k3, mask)


def truncated_importance_weights(
    logp_train: torch.Tensor, logp_sampler: torch.Tensor, cap: float
) -> torch.Tensor:
    """Truncated importance weights for rollouts sampled by another engine (TIS):
    ``w = min(pi_train / pi_sampler, C) = exp(min(logp_train - logp_sampler, log C))``, detached.

    ``pi_train`` is the trainer's probability of the sampled token under the policy that
    sampled (PPO's ``pi_old``), ``pi_sampler`` the engine's own (vLLM's, in another dtype and
    kernel). Multiplying the token loss by ``w`` corrects the gradient for the gap between the two;
    the cap bounds its variance (F. Yao et al., "Your efficient RL framework secretly brings you
    off-policy RL training", 2025, fengyao.notion.site/off-policy-rl; verl's rollout importance
    sampling, docs/advance/rollout_is.md, off by default there too). ``(B, T)`` -> ``(B, T)``.

    >>> truncated_importance_weights(torch.tensor([0.0, -1.0]), torch.tensor([-1.0, 0.0]), 2.0)
    tensor([2.0000, 0.3679])
    """
    if cap <= 0:
        raise ValueError(f"the importance-weight cap must be > 0, got {cap}")
    log_ratio = (logp_train - logp_sampler).detach()
    return torch.exp(torch.clamp(log_ratio, max=math.log(cap)))


def sampler_gap(
    logp_train: torch.Tensor, logp_sampler: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """How far the sampling engine's policy is from the trainer's on the sampled tokens.

    With ``d = logp_train - logp_sampler`` per response token: ``logp_diff_mean`` = token-mean
    of ``|d|``, ``logp_diff_max`` = max of ``|d|``, ``kl`` = token-mean of the k3 estimate
    ``exp(d) - d - 1`` of KL(sampler || trainer) (the tokens were drawn by the sampler).
    All three are 0 when the engine samples exactly the trainer's policy; a skipped weight sync
    shows up here first. ``(B, T)`` -> metrics.
    """
    d = torch.clamp((logp_train - logp_sampler).detach().double(), -KL_LOG_RATIO_CLAMP,
                    KL_LOG_RATIO_CLAMP)
    on = mask.bool()
    abs_d = d.abs()
    return {
        "logp_diff_mean": float(masked_token_mean(abs_d, mask)),
        "logp_diff_max": float(abs_d[on].max()) if on.any() else 0.0,
        "kl": float(masked_token_mean(torch.exp(d) - d - 1.0, mask)),
    }
