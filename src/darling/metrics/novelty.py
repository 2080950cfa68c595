"""NoveltyBench metrics over partitioned groups (spec section 4).

Inputs are per generation, shape ``(N,)``: ``labels`` (the equivalence class of each generation,
any hashable; classes are local to a group, so the same label in two groups means nothing),
``group_ids`` (the prompt of each generation) and, where needed, ``correct`` or ``scores``.
Within a group, generations are taken in input order (i = 1..k).

Each function returns ``(per_group, metrics)``: ``per_group`` maps each group id (in order of
first appearance) to its value, ``metrics`` holds the mean over groups and any counts.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Sequence

import numpy as np

from darling.groups import as_list, check_lengths, group_indices

PATIENCE = 0.8
"""NoveltyBench's patience p: the weight of generation i is p^(i-1)."""

NOVELTYBENCH_REWARD_THRESHOLDS = (
    -7.71875, -6.28125, -6.0, -5.71875, -5.5, -5.0, -4.375, -3.4375, -2.046875,
)
"""NoveltyBench's bins of Skywork-Reward-Gemma-2-27B-v0.2 raw scores (``src/score.py``,
``reward_thresholds``): a raw score maps to 1..10 by ``noveltybench_score``."""


def noveltybench_score(raw: float, thresholds: Sequence[float] = NOVELTYBENCH_REWARD_THRESHOLDS
                       ) -> int:
    """NoveltyBench's reward transform: ``bisect_left(thresholds, raw) + 1``, a score in
    1..len(thresholds)+1; a raw score equal to a threshold falls in the lower bin.

    >>> [noveltybench_score(r) for r in (-9.0, -7.71875, -6.1, -2.046875, -2.0)]
    [1, 1, 3, 9, 10]
    """
    return bisect.bisect_left(list(thresholds), raw) + 1


def distinct_k(
    labels: Sequence[Hashable], group_ids: Sequence[Hashable]
) -> tuple[dict[Hashable, int], dict[str, float]]:
    """``distinct_k`` = number of equivalence classes among a group's k generations.

    >>> distinct_k(["x", "x", "y", "x"], [0, 0, 0, 1])
    ({0: 2, 1: 1}, {'distinct_k_mean': 1.5})
    """
    labels = as_list(labels)
    check_lengths(len(labels), group_ids, "labels")
    per_group = {
        gid: len({labels[i] for i in members}) for gid, members in group_indices(group_ids).items()
    }
    return per_group, {"distinct_k_mean": _mean(per_group)}


def correct_distinct_k(
    labels: Sequence[Hashable], correct: Sequence[bool], group_ids: Sequence[Hashable]
) -> tuple[dict[Hashable, int], dict[str, float]]:
    """Number of classes of a group that contain at least one correct generation.

    >>> correct_distinct_k(["x", "x", "y", "z"], [False, True, False, True], ["g"] * 4)
    ({'g': 2}, {'correct_distinct_k_mean': 2.0})
    """
    labels = as_list(labels)
    correct = np.asarray(correct, dtype=bool)
    check_lengths(len(labels), group_ids, "labels")
    check_lengths(len(correct), group_ids, "correctness values")
    per_group = {
        gid: len({labels[i] for i in members if correct[i]})
        for gid, members in group_indices(group_ids).items()
    }
    return per_group, {"correct_distinct_k_mean": _mean(per_group)}


def utility_k(
    labels: Sequence[Hashable],
    scores: Sequence[float | None],
    group_ids: Sequence[Hashable],
    patience: float = PATIENCE,
) -> tuple[dict[Hashable, float], dict[str, float]]:
    """NoveltyBench utility of each group of generations i = 1..k (in input order):

        utility_k = sum_i p^(i-1) * N_i * s_i / sum_i p^(i-1)

    with ``p = patience``, ``s_i`` the quality score of generation i (1..10) and ``N_i = 1`` iff
    generation i is the first of its class (a repeat adds nothing).

    A missing score (``None`` or NaN: the judge failed) makes its whole group unscorable: the
    group is left out of ``per_group`` and of the mean and counted in
    ``metrics["groups_missing_score"]``; it is never read as 0. ``utility_k_mean`` is NaN when
    no group could be scored.

    >>> per_group, _ = utility_k(["a", "a", "b"], [8, 9, 4], ["g"] * 3)
    >>> round(per_group["g"], 6)  # (1 * 8 + 0.8 * 0 * 9 + 0.64 * 1 * 4) / (1 + 0.8 + 0.64)
    4.327869
    """
    if not 0 < patience <= 1:
        raise ValueError(f"patience must be in (0, 1], got {patience}")
    labels = as_list(labels)
    check_lengths(len(labels), group_ids, "labels")
    check_lengths(len(scores), group_ids, "scores")
    score_list = [_score(s, position) for position, s in enumerate(scores)]
    per_group: dict[Hashable, float] = {}
    missing = 0
    for gid, members in group_indices(group_ids).items():
        if any(score_list[i] is None for i in members):
            missing += 1
            continue
        weights = patience ** np.arange(len(members))  # p^(i-1), i = 1..k
        first_of_class = np.zeros(len(members))
        seen: set[Hashable] = set()
        for position, i in enumerate(members):
            if labels[i] not in seen:
                first_of_class[position] = 1.0
                seen.add(labels[i])
        values = np.asarray([score_list[i] for i in members], dtype=np.float64)
        per_group[gid] = float((weights * first_of_class * values).sum() / weights.sum())
    metrics = {
        "utility_k_mean": _mean(per_group),
        "groups_scored": float(len(per_group)),
        "groups_missing_score": float(missing),
    }
    return per_group, metrics


def _score(value: float | None, position: int) -> float | None:
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    value = float(value)
    if math.isinf(value):
        raise ValueError(f"score {position} is infinite")
    return value


def _mean(per_group: dict[Hashable, float]) -> float:
    return float(np.mean(list(per_group.values()))) if per_group else math.nan

