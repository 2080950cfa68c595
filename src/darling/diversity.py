"""Diversity of each rollout within its group (spec sections 1.3 and 5).

Every aggregator is a callable ``(texts, group_ids, **context) -> (scores, metrics)`` that returns
one raw score in [0, 1] per rollout (shape ``(N,)``, float64) and a metrics dict. The floor
``Norm(Div) = max(Div, floor)`` is applied by the fusion step, so that every aggregator gets the
same treatment (see ``darling.fusion``). ``context`` carries ``labels`` (the class labels of this
batch, computed once by the partition function) and ``quality`` (shape ``(N,)``, the quality
scores, used by the correct-only partition diversity).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from darling.groups import check_lengths, group_indices
from darling.metrics.embedding import mean_pairwise_cosine_distance
from darling.metrics.lexical import ngram_novelty_scores


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
    if not classes:  # no scored rollout this step: NaN, without numpy's "Mean of empty slice"
        return {"classes_per_group": float("nan"), "classes_share": float("nan"),
                "singleton_share": float("nan")}
    return {
        "classes_per_group": float(np.mean(classes)),
        "classes_share": float(np.mean(np.asarray(classes) / np.asarray(sizes))),
        "singleton_share": singletons / max(len(labels), 1),
    }


def correct_class_diversity(
    labels: Sequence[int], group_ids: Sequence[Hashable], correct: Sequence[bool]
) -> np.ndarray:
    """Diversity among the correct rollouts only (spec section 3, the correct-only regime).

    For a correct rollout i of a group with ``n_c`` correct rollouts,
    ``Div_i = (n_c - |C_i ∩ correct|) / (n_c - 1)``: the share of the *other correct* rollouts
    not in i's class. A wrong rollout gets 0 (the fusion floor then gives it ``Norm = floor``);
    a group's only correct rollout gets 1.0 (it duplicates no correct answer). Shape ``(N,)``.

    >>> # n=4, 3 correct; the first two correct are one class -> 1/2, 1/2, 1; the wrong one 0
    >>> correct_class_diversity([0, 0, 1, 0], ["g"] * 4, [True, True, True, False]).tolist()
    [0.5, 0.5, 1.0, 0.0]
    """
    labels = np.asarray(labels)
    correct = np.asarray(correct, dtype=bool)
    check_lengths(len(labels), group_ids, "labels")
    check_lengths(len(correct), group_ids, "correctness values")
    div = np.zeros(len(labels), dtype=np.float64)
    for members in group_indices(group_ids).values():
        right = members[correct[members]]
        div[right] = class_diversity(labels[right], [0] * len(right))
    return div


class PartitionDiversity:
    """Semantic diversity from the partition (DARLING): ``Div_i = (n - |C_i|) / (n - 1)`` over the
    classes the partition function found (``context["labels"]``).

    ``correct_only=True`` is the spec's second verifiable regime (section 3): only rollouts with
    ``quality >= correct_threshold`` (default 1.0, i.e. correct under a 0/1 verifier) are
    compared; ``Div_i`` counts the other correct rollouts not in i's class, over
    ``#correct - 1`` (``correct_class_diversity``), and every wrong rollout gets 0, so the fusion
    floor applies to it. Classes are the batch's classes restricted to the correct rollouts: exact
    for key partitions (``classifier=answer_set`` / ``answer``); with a pair classifier, two
    correct rollouts that union-find joined only through a wrong one stay one class.
    """

    __name__ = "partition"

    def __init__(self, correct_only: bool = False, correct_threshold: float = 1.0):
        self.correct_only = correct_only
        self.correct_threshold = correct_threshold

    def __call__(
        self, texts: Sequence[str], group_ids: Sequence[Hashable], **context: Any
    ) -> tuple[np.ndarray, dict[str, float]]:
        check_lengths(len(texts), group_ids)
        labels = context.get("labels")
        if labels is None:
            raise ValueError(
                "PartitionDiversity needs the batch's class labels: call it as "
                "diversity_fn(texts, group_ids, labels=labels) after the partition"
            )
        if not self.correct_only:
            return class_diversity(labels, group_ids), {}
        quality = context.get("quality")
        if quality is None:
            raise ValueError(
                "diversity.correct_only=true needs the quality of each rollout: call it as "
                "diversity_fn(texts, group_ids, labels=labels, quality=quality)"
            )
        quality = np.asarray(quality, dtype=np.float64)
        check_lengths(len(quality), group_ids, "quality scores")
        correct = quality >= self.correct_threshold
        return correct_class_diversity(labels, group_ids, correct), {
            "correct_share": float(correct.mean()) if len(correct) else 0.0
        }


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
