"""Fuse quality and diversity into the training reward (spec sections 1.4 and 1.5).

Quality first goes through an explicit transform (multiplying a signed reward-model score by a
diversity weight would reward duplicates whenever the score is negative, spec section 6), then a
fusion rule combines it with the diversity score. ``diversity_weight`` (lambda in [0, 1]) moves
smoothly from quality-only GRPO (0) to full DARLING (1).

Every transform is called as ``transform(quality, group_ids=...)`` and every fusion as
``fuse(quality, diversity, group_ids=..., diversity_weight=...)``, so the reward config names them
as Hydra partials (``conf/reward/quality_transform/``, ``conf/reward/fusion/``); a rule that works
per rollout accepts ``group_ids`` and ignores it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from darling.groups import check_lengths, group_indices

DEFAULT_DIVERSITY_FLOOR = 0.1
"""Spec section 1.4 (authors' code): ``Norm(Div) = max(Div, 0.1)``; a duplicated good answer
keeps a little reward."""


def identity(quality: np.ndarray, *, group_ids: Sequence[Hashable] | None = None) -> np.ndarray:
    """``r_i``: quality as scored (for scores already on a non-negative scale)."""
    return _as_float(quality)


def shift_to_group_min(quality: np.ndarray, group_ids: Sequence[Hashable]) -> np.ndarray:
    """``r_i - min_{j in group} r_j``: non-negative quality, same within-group differences.

    >>> shift_to_group_min(np.array([-3.0, -1.0, 2.0]), ["g", "g", "h"]).tolist()
    [0.0, 2.0, 0.0]
    """
    quality = _as_float(quality)
    check_lengths(len(quality), group_ids, "quality scores")
    shifted = np.empty_like(quality)
    for members in group_indices(group_ids).values():
        shifted[members] = quality[members] - quality[members].min()
    return shifted


def affine(
    quality: np.ndarray,
    scale: float = 1.0,
    offset: float = 0.0,
    *,
    group_ids: Sequence[Hashable] | None = None,
) -> np.ndarray:
    """``scale * r + offset`` (e.g. map a known score range onto [0, 1])."""
    return scale * _as_float(quality) + offset


def sigmoid(
    quality: np.ndarray,
    temperature: float = 1.0,
    center: float = 0.0,
    *,
    group_ids: Sequence[Hashable] | None = None,
) -> np.ndarray:
    """``1 / (1 + exp(-(r - center) / temperature))``: a monotone map onto (0, 1)."""
    return 1.0 / (1.0 + np.exp(-(_as_float(quality) - center) / temperature))


def fuse_multiplicative(
    quality: np.ndarray,
    diversity: np.ndarray,
    diversity_weight: float = 1.0,
    floor: float = DEFAULT_DIVERSITY_FLOOR,
    *,
    group_ids: Sequence[Hashable] | None = None,
) -> np.ndarray:
    """DARLING's fusion: ``R_i = r_i * ((1 - lambda) + lambda * max(Div_i, floor))``.

    lambda = 1 is the paper's ``r_i * Norm(Div_i)``; lambda = 0 is quality only. Requires
    ``r_i >= 0`` (transform signed scores first). Shapes ``(N,)`` -> ``(N,)``.

    >>> fuse_multiplicative(np.array([1.0, 1.0]), np.array([0.0, 0.5])).tolist()
    [0.1, 0.5]
    """
    quality, diversity = _check_pair(quality, diversity)
    _check_weight(diversity_weight)
    if (quality < 0).any():
        raise ValueError(
            f"multiplicative fusion needs quality >= 0 but got min {quality.min():.4g}: set "
            "reward/quality_transform=group_min (or affine, sigmoid) for signed scores"
        )
    norm = np.maximum(diversity, floor)
    return quality * ((1.0 - diversity_weight) + diversity_weight * norm)


def fuse_additive(
    quality: np.ndarray,
    diversity: np.ndarray,
    diversity_weight: float = 1.0,
    *,
    group_ids: Sequence[Hashable] | None = None,
) -> np.ndarray:
    """Additive ablation: ``R_i = r_i + lambda * Div_i``. Shapes ``(N,)`` -> ``(N,)``."""
    quality, diversity = _check_pair(quality, diversity)
    _check_weight(diversity_weight)
    return quality + diversity_weight * diversity


def fuse_additive_zscore(
    quality: np.ndarray,
    diversity: np.ndarray,
    group_ids: Sequence[Hashable],
    diversity_weight: float = 1.0,
    eps: float = 1e-6,
) -> np.ndarray:
    """Normalised additive ablation: ``R_i = z(r)_i + lambda * z(Div)_i`` with z-scores taken
    within each group (``z(x)_i = (x_i - mean) / (std + eps)``; a constant group gives 0)."""
    quality, diversity = _check_pair(quality, diversity)
    _check_weight(diversity_weight)
    check_lengths(len(quality), group_ids, "quality scores")
    return _zscore(quality, group_ids, eps) + diversity_weight * _zscore(diversity, group_ids, eps)


def _zscore(x: np.ndarray, group_ids: Sequence[Hashable], eps: float) -> np.ndarray:
    z = np.zeros_like(x)
    for members in group_indices(group_ids).values():
        values = x[members]
        z[members] = (values - values.mean()) / (values.std() + eps)
    return z


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError(f"{int(np.isnan(x).sum())} NaN value(s) reached reward fusion")
    return x


def _check_pair(quality: np.ndarray, diversity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    quality, diversity = _as_float(quality), _as_float(diversity)
    if quality.shape != diversity.shape:
        raise ValueError(f"quality {quality.shape} and diversity {diversity.shape} differ")
    return quality, diversity


def _check_weight(diversity_weight: float) -> None:
    if not 0.0 <= diversity_weight <= 1.0:
        raise ValueError(f"diversity_weight must be in [0, 1], got {diversity_weight}")
