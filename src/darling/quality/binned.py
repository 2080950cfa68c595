"""A quality function's raw scores mapped onto ordered bins (NoveltyBench's 1..10 transform)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from darling.errors import ConfigError
from darling.metrics.novelty import NOVELTYBENCH_REWARD_THRESHOLDS, noveltybench_score


class BinnedQuality:
    """``s_i = bisect_left(thresholds, q_i) + 1`` for the scores ``q_i`` of ``quality``: a raw
    reward-model score becomes a score on 1..len(thresholds)+1, as NoveltyBench's ``score.py``
    does before utility (its default thresholds bin Skywork-Reward-Gemma-2-27B-v0.2 scores).
    A failed row (None) stays None.

    >>> BinnedQuality(lambda p, c, r: [-9.0, None, -1.0])(["q"] * 3, ["a", "b", "c"], [{}] * 3)
    [1.0, None, 10.0]
    """

    __name__ = "binned"

    def __init__(
        self, quality: Callable[..., Sequence[float | None]],
        thresholds: Sequence[float] = NOVELTYBENCH_REWARD_THRESHOLDS,
    ):
        if list(thresholds) != sorted(thresholds):
            raise ConfigError(f"quality.thresholds={list(thresholds)} must be increasing")
        self.quality, self.thresholds = quality, list(thresholds)

    def __call__(
        self, prompts: Sequence[str], completions: Sequence[str], rows: Sequence[Any], **kwargs
    ) -> list[float | None]:
        raw = self.quality(prompts, completions, rows, **kwargs)
        return [None if r is None else float(noveltybench_score(r, self.thresholds)) for r in raw]
