"""Run a quality function and check what it returns."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

QualityFn = Callable[..., Sequence[float | None]]


class QualityFailure(RuntimeError):
    """A quality function raised or returned something unusable for the whole batch."""


def score_quality(
    quality_fn: QualityFn,
    prompts: Sequence[str],
    completions: Sequence[str],
    rows: Sequence[Any],
) -> tuple[np.ndarray, dict[str, float]]:
    """Scores of shape ``(N,)`` with NaN where the function returned ``None`` (a failed row).

    Raises ``QualityFailure`` naming the function when it raises, returns the wrong number of
    scores, or returns NaN/inf (a NaN is a bug in the function, not a failed row: return None).
    Metrics: ``failed`` (count of None rows) and ``failed_share``.
    """
    name = getattr(quality_fn, "__name__", type(quality_fn).__name__)
    try:
        raw = list(quality_fn(list(prompts), list(completions), list(rows)))
    except Exception as err:  # noqa: BLE001 - re-raised with the function's name
        raise QualityFailure(
            f"quality function {name!r} raised {type(err).__name__}: {err}"
        ) from err
    if len(raw) != len(completions):
        raise QualityFailure(
            f"quality function {name!r} returned {len(raw)} scores for {len(completions)} "
            "completions"
        )
    scores = np.full(len(raw), np.nan)
    for i, value in enumerate(raw):
        if value is None:
            continue
        value = float(value)
        if not math.isfinite(value):
            raise QualityFailure(
                f"quality function {name!r} returned {value} for row {i}: return None for a row "
                "that cannot be scored, never NaN or inf"
            )
        scores[i] = value
    failed = int(np.isnan(scores).sum())
    return scores, {"failed": float(failed), "failed_share": failed / max(len(raw), 1)}
