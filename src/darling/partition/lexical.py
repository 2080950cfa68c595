"""Parameter-free pair classifiers: n-gram overlap and unigram Jaccard.

These are the lexical baselines of spec section 2 (4-gram: section 5). Final-answer equality is a
key partition (``darling.partition.keyed.MathAnswerPartition``), not a pair classifier.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from darling.metrics.lexical import ngrams
from darling.partition.base import Pair, PairClassifier, _check_pairs_labels, register_backend
from darling.partition.calibration import best_f1_threshold

_WORD = re.compile(r"\w+", re.UNICODE)


def word_tokens(text: str) -> list[str]:
    """Lower-cased ``\\w+`` tokens (punctuation dropped): ``"Hi, you!"`` -> ``["hi", "you"]``."""
    return _WORD.findall(text.lower())


def jaccard(a: set, b: set) -> float:
    """``|a & b| / |a | b|``; two empty sets give 1.0 (nothing distinguishes them)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


class _ThresholdFitMixin:
    """``fit`` of a parameter-free score: choose ``threshold_`` by best F1 on the given pairs."""

    def fit(self, pairs: Sequence[Pair], labels: Sequence[int]) -> PairClassifier:
        _check_pairs_labels(pairs, labels)
        self.threshold_, _ = best_f1_threshold(labels, self.predict_proba(pairs))
        return self


@register_backend
class NgramOverlapClassifier(_ThresholdFitMixin, PairClassifier):
    """``p = Jaccard(4-grams(a), 4-grams(b))`` over whitespace tokens (the 4-gram baseline).

    Symmetric by construction. ``threshold_`` defaults to 0.5 and is calibrated by ``fit``.
    """

    backend = "ngram"

    def __init__(self, n: int = 4, threshold: float = 0.5):
        self.n = n
        self.threshold_ = threshold

    def _score_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        grams = {int(i): set(ngrams(texts[i].split(), self.n)) for i in np.unique(index_pairs)}
        return np.asarray([jaccard(grams[int(i)], grams[int(j)]) for i, j in index_pairs])

    def _config(self) -> dict[str, Any]:
        return {"n": self.n}


@register_backend
class JaccardClassifier(_ThresholdFitMixin, PairClassifier):
    """``p = |W_a & W_b| / |W_a | W_b|`` over lower-cased word sets (the unigram baseline)."""

    backend = "jaccard"

    def __init__(self, threshold: float = 0.5):
        self.threshold_ = threshold

    def _score_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        words = {int(i): set(word_tokens(texts[i])) for i in np.unique(index_pairs)}
        return np.asarray([jaccard(words[int(i)], words[int(j)]) for i, j in index_pairs])
