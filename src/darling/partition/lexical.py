"""Parameter-free pair classifiers: n-gram overlap, unigram Jaccard, and final-answer match.

These are the lexical baselines of spec section 2 (4-gram: section 5) and the verifiable-regime
classifier that calls two math solutions equivalent when their final answers are equal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from darling.partition.base import Pair, PairClassifier, _check_pairs_labels, register_backend
from darling.partition.calibration import best_f1_threshold
from darling.tasks.answers import last_boxed

_WORD = re.compile(r"\w+", re.UNICODE)


def word_tokens(text: str) -> list[str]:
    """Lower-cased ``\\w+`` tokens (punctuation dropped): ``"Hi, you!"`` -> ``["hi", "you"]``."""
    return _WORD.findall(text.lower())


def ngram_set(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """Distinct n-grams of a token list (empty when shorter than ``n``)."""
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """``|a & b| / |a | b|``; two empty sets give 1.0 (nothing distinguishes them)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def ngram_jaccard(text_a: str, text_b: str, n: int, whitespace: bool = False) -> float:
    """Jaccard similarity of the distinct n-gram sets of two texts (symmetric, in [0, 1]).

    Tokens are lower-cased ``\\w+`` words, or raw whitespace tokens with ``whitespace=True`` (the
    authors' 4-gram baseline, spec section 5).

    >>> ngram_jaccard("the cat sat", "the cat ran", 1)  # {the, cat} / {the, cat, sat, ran}
    0.5
    """
    tokenise = str.split if whitespace else word_tokens
    return jaccard(ngram_set(tokenise(text_a), n), ngram_set(tokenise(text_b), n))


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
        grams = {int(i): ngram_set(texts[i].split(), self.n) for i in np.unique(index_pairs)}
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


# -- final-answer matching (verifiable regime) -----------------------------------------------

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_FRAC = re.compile(r"^\\[dt]?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}$")
_ANSWER_PREFIX = re.compile(r"^(?:final answer|the answer is|answer)\s*[:=]?\s*", re.IGNORECASE)
_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}")


def math_final_answer(text: str) -> str:
    """The final answer of a solution: the last ``\\boxed{}``, else the last number, else the
    last non-empty line (raw, canonicalise with ``canonical_math_answer``)."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def canonical_math_answer(answer: str) -> str | Fraction:
    """Canonical form of a final answer: an exact ``Fraction`` for numbers, else clean text.

    Strips ``$``, ``\\text{}``, an "answer:" prefix, surrounding whitespace and trailing
    punctuation; lower-cases; collapses whitespace; removes thousands commas. ``"0.50"``,
    ``"1/2"`` and ``"\\frac{1}{2}"`` all give ``Fraction(1, 2)``.
    """
    text = _TEXT_WRAPPER.sub(r"\1", answer.replace("$", "")).strip()
    text = _ANSWER_PREFIX.sub("", text).strip().rstrip(".,;:!?").strip().lower()
    text = " ".join(text.split())
    frac = _FRAC.match(text)
    candidate = f"{frac.group(1)}/{frac.group(2)}" if frac else text
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", candidate):
        candidate = candidate.replace(",", "")
    try:
        return Fraction(candidate)
    except (ValueError, ZeroDivisionError):
        return text


def answers_match(text_a: str, text_b: str) -> bool:
    """Whether two solutions end in the same normalised final answer."""
    return canonical_math_answer(math_final_answer(text_a)) == canonical_math_answer(
        math_final_answer(text_b)
    )


@register_backend
class AnswerMatchClassifier(PairClassifier):
    """``p = 1`` if the normalised final answers are equal else ``0``; ``threshold_ = 0.5``.

    >>> AnswerMatchClassifier().predict_proba([("x = 2, so \\\\boxed{0.50}", "1/2")]).tolist()
    [1.0]
    """

    backend = "answer"
    applies_short_answer_rule = False  # "1/2" and "0.50" share no word but are the same answer

    def __init__(self, threshold: float = 0.5):
        self.threshold_ = threshold

    def _score_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        answers = {
            int(i): canonical_math_answer(math_final_answer(texts[i]))
            for i in np.unique(index_pairs)
        }
        return np.asarray(
            [float(answers[int(i)] == answers[int(j)]) for i, j in index_pairs], dtype=np.float64
        )
