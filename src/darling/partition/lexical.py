"""Parameter-free pair classifiers: n-gram overlap and unigram Jaccard.

These are the lexical baselines of spec section 2 (4-gram: section 5). Final-answer equality is a
key partition (``darling.partition.keyed.MathAnswerPartition``), not a pair classifier.

They learn nothing but a threshold, so, unlike the model backends, an unfitted one is a valid
classifier (documented exception to "fit before predict"): ``predict_proba`` needs no fit, and
until ``fit`` (or ``calibrate``, or loading) sets ``threshold_`` it reads as the fixed
``threshold`` parameter. ``fit(pairs, labels)`` calibrates ``threshold_`` by best F1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from darling.metrics.lexical import ngrams
from darling.partition.base import Pair, PairClassifier, register_backend

_WORD = re.compile(r"\w+", re.UNICODE)


def word_tokens(text: str) -> list[str]:
    """Lower-cased ``\\w+`` tokens (punctuation dropped): ``"Hi, you!"`` -> ``["hi", "you"]``."""
    return _WORD.findall(text.lower())


def jaccard(a: set, b: set) -> float:
    """``|a & b| / |a | b|``; two empty sets give 1.0 (nothing distinguishes them)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


class _ParameterFree(PairClassifier):
    """A score with no learned parameters: no fit needed; ``fit`` calibrates ``threshold_``."""

    fitted_attributes = ()

    def __getattr__(self, name: str) -> Any:
        """Unfitted, ``threshold_`` is the ``threshold`` parameter (only called when normal
        lookup fails, i.e. before ``fit``/``calibrate``/loading set ``threshold_``)."""
        if name == "threshold_":
            return self.threshold
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def fit(self, pairs: Sequence[Pair], labels: Sequence[int]) -> PairClassifier:
        """Set ``threshold_`` by best F1 on the given pairs (``calibrate``); returns ``self``."""
        self.calibrate(pairs, labels)
        return self


@register_backend
class NgramOverlapClassifier(_ParameterFree):
    """``p = Jaccard(n-grams(a), n-grams(b))`` over whitespace tokens (the 4-gram baseline).

    Symmetric by construction. ``threshold`` is the decision threshold until ``fit`` calibrates
    ``threshold_``.
    """

    backend = "ngram"

    def __init__(self, n: int = 4, threshold: float = 0.5):
        self.n = n
        self.threshold = threshold

    def _score_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        grams = {int(i): set(ngrams(texts[i].split(), self.n)) for i in np.unique(index_pairs)}
        return np.asarray([jaccard(grams[int(i)], grams[int(j)]) for i, j in index_pairs])


@register_backend
class JaccardClassifier(_ParameterFree):
    """``p = |W_a & W_b| / |W_a | W_b|`` over lower-cased word sets (the unigram baseline).
    ``threshold`` is the decision threshold until ``fit`` calibrates ``threshold_``."""

    backend = "jaccard"

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def _score_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        words = {int(i): set(word_tokens(texts[i])) for i in np.unique(index_pairs)}
        return np.asarray([jaccard(words[int(i)], words[int(j)]) for i, j in index_pairs])
