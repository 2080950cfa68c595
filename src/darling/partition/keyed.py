"""Partitions by a key computed per rollout, for tasks whose answers can be read off exactly.

A ``KeyPartition`` gives every rollout a hashable key from its text and its prompt row; two
rollouts of a group are one class iff their keys are equal. No pair is scored, so it costs nothing
next to the learned classifier, and on a task with a known answer set it is exact.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from darling.partition.unionfind import partition
from darling.tasks.answers import answer_in_set, extract_final_answer, normalise_answer
from darling.tasks.prompts import row_aliases, row_field


class KeyPartition:
    """Interface: ``class_keys(texts, rows) -> one hashable key per text``."""

    backend = "key"

    def class_keys(self, texts: Sequence[str], rows: Sequence[Any]) -> list[Hashable]:
        raise NotImplementedError


class AnswerSetPartition(KeyPartition):
    """Classes of an answer-set task (``classifier=answer_set``): a correct rollout's key is the
    canonical answer it gives (``answer_in_set``: "USA" and "United States" are one class); an
    incorrect one's is its normalised final answer, so repeated wrong answers are one class too.

    >>> row = {"answers": ["Mars", "Venus"]}
    >>> AnswerSetPartition().class_keys(["Mars.", "I pick Mars!", "Pluto", "pluto"], [row] * 4)
    [('answer', 'Mars'), ('answer', 'Mars'), ('other', 'pluto'), ('other', 'pluto')]
    """

    backend = "answer_set"

    def class_keys(self, texts: Sequence[str], rows: Sequence[Any]) -> list[Hashable]:
        keys: list[Hashable] = []
        for text, row in zip(texts, rows, strict=True):
            correct, canonical = answer_in_set(text, row_field(row, "answers"), row_aliases(row))
            keys.append(("answer", canonical) if correct else
                        ("other", normalise_answer(extract_final_answer(text))))
        return keys


def labels_from_keys(keys: Sequence[Hashable], group_ids: Sequence[Hashable]) -> np.ndarray:
    """Class labels, shape ``(N,)`` int64: equal ``(group, key)`` -> equal label, numbered by first
    appearance (the convention of ``union_find_labels``).

    >>> labels_from_keys(["a", "b", "a", "a"], [0, 0, 0, 1]).tolist()
    [0, 1, 0, 2]
    """
    if len(keys) != len(group_ids):
        raise ValueError(f"{len(keys)} keys for {len(group_ids)} group ids")
    numbering: dict[tuple[Hashable, Hashable], int] = {}
    pairs = zip(group_ids, keys, strict=True)
    labels = [numbering.setdefault(pair, len(numbering)) for pair in pairs]
    return np.asarray(labels, dtype=np.int64)


def partition_rollouts(
    texts: Sequence[str], group_ids: Sequence[Hashable], rows: Sequence[Any], classifier: Any
) -> tuple[np.ndarray, dict[str, float]]:
    """Labels and metrics for a batch with either kind of partition function: a pair classifier
    (scored pairs merged by union-find, ``partition``) or a ``KeyPartition`` (``rows[i]`` is the
    prompt row of ``texts[i]``)."""
    if isinstance(classifier, KeyPartition):
        return labels_from_keys(classifier.class_keys(texts, rows), group_ids), {}
    return partition(texts, group_ids, classifier)
