"""From per-rollout quality and diversity to the training reward of one arm.

``Reward`` holds the arm's rule as callables (built from ``conf/reward/`` by the training shell):
a quality transform (spec 1.5), a fusion (spec 1.4 and 1.5), the diversity weight lambda and
whether advantages are divided by the group std (spec 1.6).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from darling.fusion import fuse_multiplicative, identity


@dataclass(frozen=True)
class Reward:
    """One arm's reward rule.

    ``quality_transform(q, group_ids=...) -> q'`` and
    ``fusion(q', div, group_ids=..., diversity_weight=...) -> R`` are functions of
    ``darling.fusion`` (or any with those signatures); ``diversity_weight`` is lambda in [0, 1],
    the knob sweeps move.
    """

    fusion: Callable[..., np.ndarray] = fuse_multiplicative
    diversity_weight: float = 1.0
    quality_transform: Callable[..., np.ndarray] = identity
    std_normalize: bool = False
    name: str = "darling"


def training_reward(
    quality: np.ndarray, diversity: np.ndarray, group_ids: Sequence[Hashable], reward: Reward
) -> tuple[np.ndarray, dict[str, float]]:
    """``R = fusion(transform(quality), diversity; lambda)``. Shapes ``(N,)`` -> ``(N,)``.

    Returns the rewards and metrics (``quality_mean`` on the raw scale,
    ``transformed_quality_mean``, ``mean``, ``std``).

    >>> training_reward(np.array([1.0, 1.0]), np.array([0.0, 0.5]), [0, 0], Reward())[0].tolist()
    [0.1, 0.5]
    """
    transformed = np.asarray(reward.quality_transform(quality, group_ids=group_ids), np.float64)
    rewards = reward.fusion(
        transformed, np.asarray(diversity), group_ids=group_ids,
        diversity_weight=reward.diversity_weight,
    )
    return rewards, {
        "quality_mean": _mean(quality),
        "transformed_quality_mean": _mean(transformed),
        "mean": _mean(rewards),
        "std": float(np.std(rewards)) if len(rewards) else float("nan"),
    }


def _mean(values: np.ndarray) -> float:
    """Mean, NaN for no values (every quality of the step failed), without numpy's warning."""
    return float(np.mean(values)) if len(values) else float("nan")
