"""Embedding diversity: mean pairwise cosine distance and the Vendi score.

``embeddings`` has shape ``(N, D)`` (one row per response, any encoder), ``group_ids`` shape
``(N,)``. Rows are L2-normalised here; a zero or non-finite row is an error.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

from darling.groups import check_lengths, group_indices


def _unit_rows(embeddings: np.ndarray, group_ids: Sequence[Hashable]) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {x.shape}")
    check_lengths(len(x), group_ids, "embeddings")
    if not np.isfinite(x).all():
        raise ValueError("embeddings hold NaN or inf")
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    if (norms == 0).any():
        raise ValueError(f"embeddings {np.flatnonzero(norms[:, 0] == 0).tolist()} are zero")
    return x / norms


def mean_pairwise_cosine_distance(
    embeddings: np.ndarray, group_ids: Sequence[Hashable]
) -> tuple[np.ndarray, dict[str, float]]:
    """Mean cosine distance of each response to the other members of its group.

        d_i = 1/(n-1) * sum_{j in group, j != i} (1 - cos(e_i, e_j))

    Returns ``(d, metrics)``: ``d`` has shape ``(N,)``, values in [0, 2]. A response alone in its
    group has no one to differ from: ``d_i = 0`` by definition, and its group is left out of
    ``metrics["mean_pairwise_cosine_distance"]`` (the mean over groups of the mean of ``d``,
    NaN if every group is a singleton) and counted in ``metrics["groups_of_one"]``.

    >>> d, m = mean_pairwise_cosine_distance(np.array([[1.0, 0], [0, 1], [1, 0]]), [0, 0, 1])
    >>> d.tolist(), m
    ([1.0, 1.0, 0.0], {'mean_pairwise_cosine_distance': 1.0, 'groups_of_one': 1.0})
    """
    x = _unit_rows(embeddings, group_ids)
    scores = np.zeros(len(x), dtype=np.float64)
    group_means = []
    singletons = 0
    for members in group_indices(group_ids).values():
        n = len(members)
        if n == 1:
            singletons += 1
            continue
        similarity = x[members] @ x[members].T  # (n, n)
        distance = 1.0 - similarity
        np.fill_diagonal(distance, 0.0)
        scores[members] = distance.sum(axis=1) / (n - 1)
        group_means.append(scores[members].mean())
    mean = float(np.mean(group_means)) if group_means else math.nan
    return scores, {"mean_pairwise_cosine_distance": mean, "groups_of_one": float(singletons)}


def vendi_score(
    embeddings: np.ndarray, group_ids: Sequence[Hashable]
) -> tuple[dict[Hashable, float], dict[str, float]]:
    """Vendi score of each group (Friedman and Dieng 2023), with the cosine-similarity kernel:

        VS = exp(-sum_i lambda_i * log(lambda_i)),   lambda = eigenvalues of K / n,
        K_ab = cos(e_a, e_b)   (n x n, one group)

    The effective number of distinct responses: 1 when all n embeddings point the same way, n
    when they are orthogonal. The nonzero eigenvalues of ``X X^T / n`` equal those of
    ``X^T X / n``, so the smaller of the two Gram matrices is decomposed.

    >>> round(vendi_score(np.eye(3), ["g"] * 3)[0]["g"], 9)
    3.0
    """
    x = _unit_rows(embeddings, group_ids)
    per_group: dict[Hashable, float] = {}
    for gid, members in group_indices(group_ids).items():
        rows = x[members]  # (n, D)
        n = len(members)
        gram = rows @ rows.T if n <= rows.shape[1] else rows.T @ rows
        eigenvalues = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)
        positive = eigenvalues[eigenvalues > 0]
        per_group[gid] = float(np.exp(-(positive * np.log(positive)).sum()))
    mean = float(np.mean(list(per_group.values()))) if per_group else math.nan
    return per_group, {"vendi_mean": mean}
