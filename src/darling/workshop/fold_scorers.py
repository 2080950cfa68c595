"""Fold scorers of every backend and baseline, for ``folds.score_folds``.

Each scorer fits a fresh model on a fold's training rows and scores its validation rows:

- ``jaccard``, ``ngram``: the lexical classifiers (``JaccardClassifier``,
  ``NgramOverlapClassifier(n=4)``); parameter-free, so nothing is fitted (ROC-AUC ignores the
  threshold);
- ``cosine``: cosine of frozen chunk-pooled MiniLM embeddings (untrained);
- ``frozen_head``: the embed-once classifier's own head on frozen MiniLM
  (``EmbedOnceClassifier.fit_head`` / ``head_proba``: ``p = sigmoid(w . (f - mu) / sigma + b)``,
  ``w >= 0``, over ``f = [cos, J_1, J_2, J_3, length ratio, J_cap]``, class-weighted), fitted per
  fold. The embeddings are computed once for all folds: ``EmbedOnceClassifier.fit`` would
  re-embed the training texts on every fold (about 9 minutes per fold on one core);
- ``finetuned``: ``EmbedOnceClassifier(**params)`` fitted per fold (the shipped recipe);
- ``cross_encoder``: ``CrossEncoderClassifier(**params)`` fitted per fold.

The last two fine-tune an encoder once per fold (10 folds) and are opt-in. All scorers apply the
short-answer rule as every ``PairClassifier`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from darling.partition.base import short_answer_decisions
from darling.workshop.folds import Scorer
from darling.workshop.pairs_data import PairRow

CHEAP_BACKENDS = ("jaccard", "ngram", "cosine", "frozen_head")
TUNED_BACKENDS = ("finetuned", "cross_encoder")
BACKENDS = CHEAP_BACKENDS + TUNED_BACKENDS


class _FrozenFeatures:
    """Frozen-encoder embeddings and lexical features of every row, computed once."""

    def __init__(self, rows: Sequence[PairRow], encoder: str | None):
        self.rows, self.encoder = rows, encoder
        self._features: np.ndarray | None = None

    def features(self) -> np.ndarray:
        """``[cos, J_1, J_2, J_3, length ratio, J_cap]`` of each row. Shape ``(n_rows, 6)``."""
        if self._features is None:
            from darling.partition.embed_once import EmbedOnceClassifier, pair_lexical_features

            distinct = list(dict.fromkeys(t for r in self.rows for t in (r.text_a, r.text_b)))
            position = {t: k for k, t in enumerate(distinct)}
            index = np.asarray([(position[r.text_a], position[r.text_b]) for r in self.rows])
            emb = EmbedOnceClassifier(encoder=self.encoder, tuned_layers=0).embed(distinct)
            emb = emb.numpy().astype(np.float64)
            cosine = (emb[index[:, 0]] * emb[index[:, 1]]).sum(1)
            lexical = pair_lexical_features(distinct, index).numpy().astype(np.float64)
            self._features = np.column_stack([cosine, lexical])
        return self._features


def _with_short_answer_rule(rows: Sequence[PairRow], scores: np.ndarray) -> np.ndarray:
    """Scores with the pairs of short responses decided as every ``PairClassifier`` decides
    them (``short_answer_decisions``)."""
    decided = short_answer_decisions((row.text_a, row.text_b) for row in rows)
    return np.where(np.isnan(decided), np.asarray(scores, dtype=np.float64), decided)


def build_scorers(
    rows: Sequence[PairRow],
    backends: Sequence[str],
    encoder: str | None = None,
    finetuned_params: dict[str, Any] | None = None,
    cross_encoder_params: dict[str, Any] | None = None,
) -> dict[str, Scorer]:
    """One ``Scorer`` per requested backend (names in ``BACKENDS``), over ``rows``."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown fold backend(s) {unknown}; choose from {list(BACKENDS)}")
    frozen = _FrozenFeatures(rows, encoder)

    def pairs(indices: Sequence[int]) -> list[tuple[str, str]]:
        return [(rows[i].text_a, rows[i].text_b) for i in indices]

    def labels(indices: Sequence[int]) -> np.ndarray:
        return np.asarray([rows[i].label for i in indices])

    def lexical(make):
        return lambda train, val: make().predict_proba(pairs(val))

    def cosine(train, val):
        return _with_short_answer_rule([rows[i] for i in val], frozen.features()[list(val), 0])

    def frozen_head(train, val):
        import torch

        from darling.partition.embed_once import EmbedOnceClassifier

        feats = torch.as_tensor(frozen.features(), dtype=torch.float32)
        train, val = list(train), list(val)
        head = EmbedOnceClassifier(encoder=encoder, tuned_layers=0).fit_head(
            feats[train, 0], feats[train, 1:], labels(train).tolist())
        scores = head.head_proba(feats[val, 0], feats[val, 1:])
        return _with_short_answer_rule([rows[i] for i in val], scores)

    def tuned(make):
        return lambda train, val: make().fit(pairs(train), labels(train).tolist()).predict_proba(
            pairs(val)
        )

    def make_finetuned():
        from darling.partition.embed_once import EmbedOnceClassifier

        return EmbedOnceClassifier(**(finetuned_params or {}))

    def make_cross_encoder():
        from darling.partition.cross_encoder import CrossEncoderClassifier

        return CrossEncoderClassifier(**(cross_encoder_params or {}))

    def make_jaccard():
        from darling.partition.lexical import JaccardClassifier

        return JaccardClassifier()

    def make_ngram():
        from darling.partition.lexical import NgramOverlapClassifier

        return NgramOverlapClassifier(n=4)

    table = {
        "jaccard": lexical(make_jaccard),
        "ngram": lexical(make_ngram),
        "cosine": cosine,
        "frozen_head": frozen_head,
        "finetuned": tuned(make_finetuned),
        "cross_encoder": tuned(make_cross_encoder),
    }
    return {name: table[name] for name in backends}
