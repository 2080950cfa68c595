"""Key partitions, for tasks whose answers can be read off exactly (``darling.partition.protocol``).

Every rollout gets a hashable key from its text and prompt row; equal keys within a group are one
class. No pair is scored, so it costs O(N) and, on a task with a known answer, it is exact:
``AnswerSetPartition`` (answer-set prompts), ``MathAnswerPartition`` (the normalised final answer
of a solution), ``ExactTextPartition`` (the text itself).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from darling.groups import check_lengths
from darling.tasks.answers import (
    answer_in_set,
    canonical_math_answer,
    extract_final_answer,
    math_final_answer,
    normalise_answer,
)
from darling.tasks.prompts import row_aliases, row_field


class KeyPartition:
    """Base of the key partitions: subclasses implement ``class_keys(texts, rows)``, one hashable
    key per text; ``labels`` makes equal keys of one group one class."""

    def class_keys(self, texts: Sequence[str], rows: Sequence[Any] | None) -> list[Hashable]:
        raise NotImplementedError

    def labels(
        self, texts: Sequence[str], group_ids: Sequence[Hashable], rows: Sequence[Any] | None
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Classes of equal keys within each group, shape ``(N,)``; no metrics."""
        check_lengths(len(texts), group_ids)
        return labels_from_keys(self.class_keys(texts, rows), group_ids), {}


class AnswerSetPartition(KeyPartition):
    """Classes of an answer-set task (``classifier=answer_set``): a correct rollout's key is the
    canonical answer it gives (``answer_in_set``: "USA" and "United States" are one class); an
    incorrect one's is its normalised final answer, so repeated wrong answers are one class too.

    >>> row = {"answers": ["Mars", "Venus"]}
    >>> AnswerSetPartition().class_keys(["Mars.", "I pick Mars!", "Pluto", "pluto"], [row] * 4)
    [('answer', 'Mars'), ('answer', 'Mars'), ('other', 'pluto'), ('other', 'pluto')]
    """

    def class_keys(self, texts: Sequence[str], rows: Sequence[Any] | None) -> list[Hashable]:
        if rows is None:
            raise ValueError("AnswerSetPartition needs the prompt row (`answers`) of each text")
        keys: list[Hashable] = []
        for text, row in zip(texts, rows, strict=True):
            correct, canonical = answer_in_set(text, row_field(row, "answers"), row_aliases(row))
            keys.append(("answer", canonical) if correct else
                        ("other", normalise_answer(extract_final_answer(text))))
        return keys


class MathAnswerPartition(KeyPartition):
    """Classes of equal final answers (``classifier=answer``): the key of a solution is
    ``canonical_math_answer(math_final_answer(text))`` (the last ``\\boxed{}``, else the last
    number, else the last line; numbers as exact fractions, so ``0.50``, ``1/2`` and
    ``\\frac{1}{2}`` are one class). No symbolic algebra: ``x^2 + 1`` and ``1 + x^2`` differ.

    >>> MathAnswerPartition().class_keys(["so \\\\boxed{0.50}", "1/2", "x = 3"], None)
    [Fraction(1, 2), Fraction(1, 2), Fraction(3, 1)]
    """

    def class_keys(self, texts: Sequence[str], rows: Sequence[Any] | None) -> list[Hashable]:
        return [canonical_math_answer(math_final_answer(text)) for text in texts]


class ExactTextPartition(KeyPartition):
    """Classes of identical texts (``classifier=exact``): the cheapest partition, a lower bound
    on duplication (any difference, even whitespace, is a new class).

    >>> ExactTextPartition().class_keys(["a", "a ", "a"], None)
    ['a', 'a ', 'a']
    """

    def class_keys(self, texts: Sequence[str], rows: Sequence[Any] | None) -> list[Hashable]:
        return list(texts)


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
