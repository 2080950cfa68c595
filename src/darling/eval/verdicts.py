"""Pre-registered decision rules applied to an interval and a p-value (docs/results.md, study 3).

Pure: numbers in, a verdict out. The rules are fixed before the data are read, so the verdict
is mechanical.
"""

from __future__ import annotations

import math


def superiority(low: float, high: float, p: float, alpha: float = 0.05) -> str:
    """H: the difference is above 0.

    ``supported`` if the interval ``[low, high]`` lies above 0 and ``p < alpha``; ``refuted`` if
    it lies below 0 and ``p < alpha``; ``undecided`` otherwise (also when any input is NaN).

    >>> superiority(0.4, 2.0, 0.01), superiority(-3.0, -0.1, 0.03), superiority(-1.0, 2.0, 0.4)
    ('supported', 'refuted', 'undecided')
    """
    if any(math.isnan(x) for x in (low, high, p)) or p >= alpha:
        return "undecided"
    if low > 0:
        return "supported"
    return "refuted" if high < 0 else "undecided"


def non_inferiority(low: float, margin: float) -> str:
    """H: the difference is above ``margin`` (a negative number, e.g. -0.05).

    ``met`` if the interval's lower end is above ``margin``, ``not met`` otherwise (a NaN lower
    end, an arm without spread or with one run, is not met).

    >>> non_inferiority(-0.03, -0.05), non_inferiority(-0.08, -0.05)
    ('met', 'not met')
    """
    return "met" if not math.isnan(low) and low > margin else "not met"
