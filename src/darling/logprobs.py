"""Per-token log-probabilities of sampled responses under a causal LM."""

from __future__ import annotations

import torch


def response_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_start: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``log pi(y_t | x, y_<t)`` for every response position.

    ``input_ids``, ``attention_mask``: ``(B, P + T)`` with the (left-padded) prompt in the first
    ``P = response_start`` columns and the response after it. Logits are divided by the sampling
    ``temperature`` so that the ratio and KL are taken under the distribution that was sampled.
    Returns ``(B, T)`` float32 (padding positions hold finite garbage; mask them).
    """
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
    ).logits  # (B, P + T, V)
    logits = logits[:, response_start - 1 : -1].float() / temperature  # (B, T, V)
    targets = input_ids[:, response_start:]  # (B, T)
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
