"""Partition rollouts into semantic equivalence classes (spec section 2).

Classes are the connected components of the graph whose edges are pairs with
``p(equivalent) > threshold`` inside one group (union-find, i.e. transitive closure).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

import numpy as np

from darling.groups import check_lengths, group_indices


class ScoresPairs(Protocol):
    threshold_: float

    def predict_proba_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        ...


def within_group_pairs(group_ids: Sequence[Hashable]) -> np.ndarray:
    """All unordered pairs ``(i, j), i < j`` of rollouts that share a group. Shape ``(P, 2)``.

    A group of size m contributes m(m-1)/2 pairs; groups of one contribute none.
    """
    blocks = []
    for members in group_indices(group_ids).values():
        if len(members) > 1:
            a, b = np.triu_indices(len(members), k=1)
            blocks.append(np.stack([members[a], members[b]], axis=1))
    if not blocks:
        return np.empty((0, 2), dtype=np.int64)
    return np.concatenate(blocks).astype(np.int64)


def union_find_labels(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected components of an undirected graph on ``n`` nodes. Shape ``(n,)``, int64.

    Labels are canonical: each class is numbered by the order of its first member, so
    the same partition always gives the same labels.

    >>> union_find_labels(4, np.array([[0, 1], [1, 2]])).tolist()  # a~b, b~c -> {a,b,c}, {d}
    [0, 0, 0, 1]
    """
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in np.asarray(edges, dtype=np.int64).reshape(-1, 2):
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = [find(x) for x in range(n)]
    canonical: dict[int, int] = {}
    return np.asarray([canonical.setdefault(r, len(canonical)) for r in roots], dtype=np.int64)


def union_find_partition(
    texts: Sequence[str],
    group_ids: Sequence[Hashable],
    classifier: ScoresPairs,
    threshold: float | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Equivalence-class labels for every rollout, classes never crossing groups.

    All within-group pairs of the whole batch are scored in one ``predict_proba_indexed`` call
    (an embed-once classifier encodes each text once). ``threshold`` defaults to the
    classifier's calibrated ``threshold_``.

    Returns ``(labels, metrics)``: ``labels`` has shape ``(N,)``, int64, unique across the batch;
    ``metrics`` holds the pair-probability summary (``pairs``, ``pair_p_mean``,
    ``pair_equivalent_share``, ``pair_p_q10/q50/q90``).
    """
    check_lengths(len(texts), group_ids)
    pairs = within_group_pairs(group_ids)
    proba = (
        np.asarray(classifier.predict_proba_indexed(list(texts), pairs), dtype=np.float64)
        if len(pairs)
        else np.empty(0)
    )
    # read after scoring, so an unfitted classifier raises its NotFittedError first
    tau = classifier.threshold_ if threshold is None else threshold
    if np.isnan(proba).any():
        raise ValueError("classifier returned NaN pair probabilities")
    labels = union_find_labels(len(texts), pairs[proba > tau])
    return labels, pair_probability_summary(proba, tau)


def pair_probability_summary(proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Summary of pair probabilities: count, mean, share above threshold, 10/50/90% quantiles."""
    if len(proba) == 0:
        return {"pairs": 0.0}
    q10, q50, q90 = np.quantile(proba, [0.1, 0.5, 0.9])
    return {
        "pairs": float(len(proba)),
        "pair_p_mean": float(proba.mean()),
        "pair_equivalent_share": float((proba > threshold).mean()),
        "pair_p_q10": float(q10),
        "pair_p_q50": float(q50),
        "pair_p_q90": float(q90),
    }
