"""From per-rollout quality and diversity to the training reward, as the reward config says.

``training_reward`` is the one place that reads the reward settings (``RewardSpec``): quality
transform (spec 1.5), then fusion with the diversity weight and floor (spec 1.4 and 1.5).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from darling.fusion import (
    affine,
    fuse_additive,
    fuse_additive_zscore,
    fuse_multiplicative,
    shift_to_group_min,
    sigmoid,
)

QUALITY_TRANSFORMS: dict[str, Callable[[np.ndarray, Sequence[Hashable], Any], np.ndarray]] = {
    "none": lambda q, gids, t: np.asarray(q, dtype=np.float64),
    "group_min": lambda q, gids, t: shift_to_group_min(q, gids),
    "affine": lambda q, gids, t: affine(q, t.scale, t.offset),
    "sigmoid": lambda q, gids, t: sigmoid(q, t.temperature, t.center),
}

FUSIONS: dict[str, Callable[[np.ndarray, np.ndarray, Sequence[Hashable], Any], np.ndarray]] = {
    "multiplicative": lambda q, d, gids, r: fuse_multiplicative(
        q, d, r.diversity_weight, r.diversity_floor
    ),
    "additive": lambda q, d, gids, r: fuse_additive(q, d, r.diversity_weight),
    "additive_zscore": lambda q, d, gids, r: fuse_additive_zscore(q, d, gids, r.diversity_weight),
}


def training_reward(
    quality: np.ndarray, diversity: np.ndarray, group_ids: Sequence[Hashable], reward: Any
) -> tuple[np.ndarray, dict[str, float]]:
    """``R = fuse(transform(quality), diversity)``. Shapes ``(N,)`` -> ``(N,)``.

    ``reward`` has the fields of ``darling.train.config.RewardSpec``. Returns the rewards and
    metrics (``quality_mean`` on the raw scale, ``transformed_quality_mean``, ``mean``, ``std``).
    """
    transformed = QUALITY_TRANSFORMS[reward.quality_transform.kind](
        quality, group_ids, reward.quality_transform
    )
    rewards = FUSIONS[reward.fusion](transformed, np.asarray(diversity), group_ids, reward)
    return rewards, {
        "quality_mean": float(np.mean(quality)),
        "transformed_quality_mean": float(np.mean(transformed)),
        "mean": float(np.mean(rewards)),
        "std": float(np.std(rewards)),
    }
