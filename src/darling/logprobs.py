"""Per-token log-probabilities of sampled responses under a causal LM, without a full-vocabulary
float32 ``log_softmax``."""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

POSITIONS_PER_CHUNK = 256
"""Response positions whose float32 logits exist at once: (B, 256, V) float32 is 128 MiB per
sequence at a 128k vocabulary, against 768 MiB for all of 1.5k positions."""


def response_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_start: int,
    temperature: float = 1.0,
    chunk: int = POSITIONS_PER_CHUNK,
) -> torch.Tensor:
    """``log pi(y_t | x, y_<t) = z_t[y_t] / tau - logsumexp(z_t / tau)`` at every response
    position ``t``.

    ``input_ids``, ``attention_mask``: ``(B, P + T)`` with the (left-padded) prompt in the first
    ``P = response_start`` columns and the response after it. Logits ``z`` are divided by the
    sampling temperature ``tau`` so that the ratio and KL are taken under the distribution that was
    sampled. Returns ``(B, T)`` float32 (padding positions hold finite garbage; mask them).

    Memory: the model computes logits for the ``T + 1`` last positions only (``logits_to_keep``;
    the prompt's logits are never built), in its own dtype. The float32 work is done ``chunk``
    positions at a time and, with gradients on, recomputed in the backward pass (checkpointed), so
    at most ``(B, chunk, V)`` float32 values exist at once instead of ``(B, T, V)`` log-softmax
    values kept for the backward.
    """
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
    keep = input_ids.shape[1] - response_start + 1
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=keep,
    ).logits[:, -keep:-1]  # (B, T, V), the model's dtype
    targets = input_ids[:, response_start:]  # (B, T)
    pieces = []
    for lo in range(0, targets.shape[1], chunk):
        args = (logits[:, lo : lo + chunk], targets[:, lo : lo + chunk], temperature)
        if torch.is_grad_enabled() and logits.requires_grad:
            pieces.append(checkpoint(_chosen_logprob, *args, use_reentrant=False))
        else:
            pieces.append(_chosen_logprob(*args))
    if not pieces:
        return logits.new_zeros(targets.shape, dtype=torch.float32)
    return torch.cat(pieces, dim=1)


def _chosen_logprob(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``(B, C, V)`` logits, ``(B, C)`` targets -> ``(B, C)`` float32 log-probabilities."""
    z = logits.float() / temperature
    return z.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, dim=-1)
