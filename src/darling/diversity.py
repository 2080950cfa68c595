"""Diversity of each rollout within its group (spec sections 1.3 and 5).

Every aggregator is a callable ``(texts, group_ids, **context) -> (scores, metrics)`` that returns
one raw score in [0, 1] per rollout (shape ``(N,)``, float64) and a metrics dict. The floor
``Norm(Div) = max(Div, floor)`` is applied by the fusion step, so that every aggregator gets the
same treatment (see ``darling.fusion``). ``context`` may carry ``labels`` (class labels already
computed for this batch) so that the partition is never computed twice.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from darling.groups import check_lengths, group_indices
from darling.metrics.embedding import mean_pairwise_cosine_distance
from darling.metrics.lexical import ngram_novelty_scores
from darling.partition.unionfind import ScoresPairs, partition


def class_diversity(labels: Sequence[int], group_ids: Sequence[Hashable]) -> np.ndarray:
    """``Div_i = (n - |C_i|) / (n - 1)``: the share of the other rollouts of i's group that are
    not in i's equivalence class (spec section 1.3). Shape ``(N,)``, float64 in [0, 1].

    A group of one has no other rollouts; its diversity is defined as 1.0 (it duplicates
    nothing). Its advantage is 0 whatever its reward, so this only affects logged means.

    >>> class_diversity([0, 0, 1, 2], ["g"] * 4).tolist()  # n=4: |C|=2,2,1,1 -> 2/3,2/3,1,1
    [0.6666666666666666, 0.6666666666666666, 1.0, 1.0]
    """
    labels = np.asarray(labels)
    check_lengths(len(labels), group_ids, "labels")
    div = np.ones(len(labels), dtype=np.float64)
    for members in group_indices(group_ids).values():
        n = len(members)
        if n == 1:
            continue
        _, inverse, counts = np.unique(labels[members], return_inverse=True, return_counts=True)
        div[members] = (n - counts[inverse]) / (n - 1)
    return div


def class_metrics(labels: Sequence[int], group_ids: Sequence[Hashable]) -> dict[str, float]:
    """Per-batch summary of a partition: mean classes per group, share of singleton rollouts,
    mean group size."""
    labels = np.asarray(labels)
    classes, singletons, sizes = [], 0, []
    for members in group_indices(group_ids).values():
        _, counts = np.unique(labels[members], return_counts=True)
        classes.append(len(counts))
        singletons += int((counts == 1).sum())
        sizes.append(len(members))
    return {
        "classes_per_group": float(np.mean(classes)),
        "classes_share": float(np.mean(np.asarray(classes) / np.asarray(sizes))),
        "singleton_share": singletons / max(len(labels), 1),
    }


class PartitionDiversity:
    """Semantic diversity from the learned partition (DARLING): ``Div_i`` over classes found by
    ``partition(texts, group_ids, classifier)``."""

    __name__ = "partition"

    def __init__(self, classifier: ScoresPairs | None = None):
        self.classifier = classifier

    def __call__(
        self, texts: Sequence[str], group_ids: Sequence[Hashable], **context: Any
    ) -> tuple[np.ndarray, dict[str, float]]:
        check_lengths(len(texts), group_ids)
        labels = context.get("labels")
        metrics: dict[str, float] = {}
        if labels is None:
            if self.classifier is None:
                raise ValueError("PartitionDiversity needs a classifier or precomputed labels")
            labels, metrics = partition(texts, group_ids, self.classifier)
        return class_diversity(labels, group_ids), metrics


class NgramDiversity:
    """Lexical baseline (spec section 5): share of a response's 4-gram positions whose 4-gram
    appears in no other rollout of its group."""

    __name__ = "ngram"

    def __init__(self, n: int = 4):
        self.n = n

    def __call__(
        self, texts: Sequence[str], group_ids: Sequence[Hashable], **context: Any
    ) -> tuple[np.ndarray, dict[str, float]]:
        check_lengths(len(texts), group_ids)
        scores = np.asarray(ngram_novelty_scores(list(texts), group_ids, n=self.n), dtype=float)
        return scores, {}


class EmbeddingDiversity:
    """Mean cosine distance of a response's embedding to the rest of its group, clipped to [0, 1].

    ``embed`` maps a list of texts to an array of shape ``(N, D)``.
    """

    __name__ = "embedding"

    def __init__(self, embed: Callable[[list[str]], np.ndarray]):
        self.embed = embed

    def __call__(
        self, texts: Sequence[str], group_ids: Sequence[Hashable], **context: Any
    ) -> tuple[np.ndarray, dict[str, float]]:
        check_lengths(len(texts), group_ids)
        embeddings = np.asarray(self.embed(list(texts)), dtype=np.float64)
        scores, _ = mean_pairwise_cosine_distance(embeddings, group_ids)
        return np.clip(scores, 0.0, 1.0), {}


class NoDiversity:
    """Quality-only baseline: every rollout gets diversity 1.0, so fusion leaves quality as is."""

    __name__ = "none"

    def __call__(
        self, texts: Sequence[str], group_ids: Sequence[Hashable], **context: Any
    ) -> tuple[np.ndarray, dict[str, float]]:
        check_lengths(len(texts), group_ids)
        return np.ones(len(texts), dtype=np.float64), {}
