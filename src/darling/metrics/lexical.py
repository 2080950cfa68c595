"""Lexical diversity: distinct-n and the 4-gram novelty baseline (spec section 5).

Tokens are whitespace-separated words. Texts and group ids have shape ``(N,)``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

from darling.groups import check_lengths, group_indices

NGRAM_NOVELTY_N = 4
"""The authors' lexical baseline uses 4-grams (spec section 5)."""


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The n-grams of a token list, in order, repeats kept (empty when shorter than ``n``); the
    one n-gram helper of darling (the partition's lexical features use it too).

    >>> ngrams(["a", "b", "c"], 2)
    [('a', 'b'), ('b', 'c')]
    """
    return list(zip(*(tokens[i:] for i in range(n)), strict=False))


def distinct_n(
    texts: Sequence[str], group_ids: Sequence[Hashable], n: int
) -> tuple[dict[Hashable, float], dict[str, float]]:
    """distinct-n of each group: ``|unique n-grams| / |n-grams|`` over all of its texts.

    Lower-cased whitespace tokens; n-grams do not cross text boundaries. A group with no n-gram
    (all texts shorter than n words) scores 0. Returns ``(per_group, {"distinct_n_mean": ...})``.

    >>> distinct_n(["a b a b", "A B"], ["g", "g"], 2)  # ab, ba, ab, ab: 2 unique of 4
    ({'g': 0.5}, {'distinct_n_mean': 0.5})
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    check_lengths(len(texts), group_ids)
    per_group: dict[Hashable, float] = {}
    for gid, members in group_indices(group_ids).items():
        grams = [g for i in members for g in ngrams(texts[i].lower().split(), n)]
        per_group[gid] = len(set(grams)) / len(grams) if grams else 0.0
    mean = float(np.mean(list(per_group.values()))) if per_group else math.nan
    return per_group, {"distinct_n_mean": mean}


def ngram_novelty_scores(
    texts: Sequence[str], group_ids: Sequence[Hashable], n: int = NGRAM_NOVELTY_N
) -> np.ndarray:
    """The 4-gram diversity baseline of each response, shape ``(N,)``, float64 in [0, 1]:

        score_i = |{distinct n-grams of i that occur in no other rollout of its group}|
                  / (number of n-gram positions of i)

    Whitespace tokens, case kept (as in the authors' code); 0 when i has fewer than n words.
    A rollout alone in its group has nothing to repeat: its score is its share of distinct
    n-grams.

    >>> ngram_novelty_scores(["a b c d e", "a b c d", "x"], ["g", "g", "g"]).tolist()
    [0.5, 0.0, 0.0]
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    check_lengths(len(texts), group_ids)
    scores = np.zeros(len(texts), dtype=np.float64)
    for members in group_indices(group_ids).values():
        gram_sets = {int(i): set(ngrams(texts[i].split(), n)) for i in members}
        owners = Counter(g for grams in gram_sets.values() for g in grams)
        for i, grams in gram_sets.items():
            positions = len(texts[i].split()) - n + 1
            if positions > 0:
                scores[i] = sum(owners[g] == 1 for g in grams) / positions
    return scores
