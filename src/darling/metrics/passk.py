"""pass@k with the unbiased estimator, averaged over prompts (spec section 3).

For a prompt with ``n`` samples of which ``c`` are correct, the probability that at least one of
``k`` samples drawn without replacement is correct is

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n - c + 1}^{n} (1 - k / i)

(Chen et al. 2021, "Evaluating Large Language Models Trained on Code"). The product form avoids
huge binomial coefficients.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from darling.groups import check_lengths, group_indices


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one prompt: ``1 - C(n-c, k) / C(n, k)``, for ``1 <= k <= n``.

    >>> pass_at_k(4, 1, 2)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
    >>> pass_at_k(5, 4, 2)  # n - c = 1 < k: every pair holds a correct sample
    1.0
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def default_ks(n_min: int) -> list[int]:
    """``1, 2, 4, ...`` up to ``n_min``, plus ``n_min`` itself.

    >>> default_ks(6)
    [1, 2, 4, 6]
    """
    ks = [2**e for e in range(n_min.bit_length()) if 2**e <= n_min]
    return ks if ks[-1] == n_min else [*ks, n_min]


def pass_at_k_curve(
    correct: Sequence[bool], group_ids: Sequence[Hashable], ks: Sequence[int] | None = None
) -> dict[int, float]:
    """Mean over prompts of ``pass_at_k(n_g, c_g, k)`` for each ``k``.

    ``correct``: shape ``(N,)``, one bool per sample; ``group_ids``: shape ``(N,)``, the prompt
    of each sample (groups may differ in size). ``ks`` defaults to ``default_ks(n_min)`` with
    ``n_min`` the smallest group size; a ``k`` larger than some group is an error.

    >>> pass_at_k_curve([True, False, False, False, True, True], ["a"] * 4 + ["b"] * 2)
    {1: 0.625, 2: 0.75}
    """
    correct = np.asarray(correct)
    check_lengths(len(correct), group_ids, "correctness values")
    if correct.size == 0:
        raise ValueError("pass_at_k_curve needs at least one sample")
    if correct.dtype != bool and not np.isin(correct, (0, 1)).all():
        raise ValueError("correct must hold booleans (or 0/1)")
    groups = group_indices(group_ids)
    sizes = {gid: len(members) for gid, members in groups.items()}
    n_min = min(sizes.values())
    ks = default_ks(n_min) if ks is None else list(ks)
    for k in ks:
        if k > n_min:
            smallest = min(sizes, key=sizes.get)
            raise ValueError(f"k={k} exceeds the {n_min} samples of group {smallest!r}")
    counts = [(sizes[gid], int(correct[members].sum())) for gid, members in groups.items()]
    return {k: float(np.mean([pass_at_k(n, c, k) for n, c in counts])) for k in ks}
