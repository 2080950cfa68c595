"""Group-relative advantages (spec section 1.6)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from darling.groups import check_lengths, dense_group_index


def group_advantages(
    rewards: torch.Tensor,
    group_ids: Sequence[Hashable],
    std_normalize: bool = False,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``A_i = R_i - mean_{j in g(i)} R_j`` (DARLING: no std division), or with
    ``std_normalize`` the GRPO form ``(R_i - mean) / (std + eps)`` where ``std`` is the unbiased
    group std, ``sqrt(sum_j (R_j - mean)^2 / (n_g - 1))`` (ddof=1, as verl and TRL compute it).

    A group of one gets ``A = 0`` (its std is undefined; it carries no relative signal).
    ``rewards``: shape ``(N,)``; returns advantages of shape ``(N,)`` and metrics
    (``zero_std_groups``: share of groups whose rewards are all equal, where no learning signal
    exists).

    >>> adv, _ = group_advantages(torch.tensor([1.0, 0.0, 0.5]), ["a", "a", "b"])
    >>> adv.tolist()
    [0.5, -0.5, 0.0]
    """
    check_lengths(len(rewards), group_ids, "rewards")
    if torch.isnan(rewards).any():
        raise ValueError("NaN rewards reached the advantage computation")
    index = torch.as_tensor(dense_group_index(group_ids), device=rewards.device)
    n_groups = int(index.max()) + 1 if len(index) else 0
    values = rewards.to(torch.float64)
    count = torch.zeros(n_groups, dtype=torch.float64, device=rewards.device)
    count.index_add_(0, index, torch.ones_like(values))
    mean = torch.zeros_like(count).index_add_(0, index, values) / count
    centered = values - mean[index]
    # unbiased (ddof=1); a group of one has no std and gets A = 0 below
    var = torch.zeros_like(count).index_add_(0, index, centered**2) / (count - 1).clamp_min(1)
    std = var.sqrt()
    advantages = centered / (std[index] + eps) if std_normalize else centered
    advantages = torch.where(count[index] > 1, advantages, torch.zeros_like(advantages))
    metrics = {
        "zero_std_groups": float((std <= eps).to(torch.float64).mean()) if n_groups else 0.0,
        "abs_mean": float(advantages.abs().mean()) if len(advantages) else 0.0,
    }
    return advantages.to(rewards.dtype), metrics
