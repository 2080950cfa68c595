"""Per-token log-probabilities of sampled responses under a causal LM, without a full-vocabulary
float32 ``log_softmax``."""

from __future__ import annotations

import torch

POSITIONS_PER_CHUNK = 256
"""Positions of one sequence whose float32 logits exist at once: 256 x 128k x 4 B = 128 MiB,
whatever the batch size (a float32 (B, T, V) tensor for 8 x 1.5k tokens is 6 GiB)."""


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
    positions of one sequence at a time in forward and backward (``_ChosenLogprob``), so beside the
    logits and their gradient at most ``(chunk, V)`` float32 values exist at once, instead of the
    ``(B, T, V)`` float32 log-softmax (and its copies) kept for the backward.
    """
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
    keep = input_ids.shape[1] - response_start + 1
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=keep,
    ).logits  # (B, T + 1, V) (or (B, P + T, V) for a model that ignores logits_to_keep)
    targets = input_ids[:, response_start:]  # (B, T)
    return _ChosenLogprob.apply(logits, targets, temperature, chunk)


class _ChosenLogprob(torch.autograd.Function):
    """``logits (B, L, V)``, ``targets (B, T)`` with ``L > T`` -> ``(B, T)`` float32
    ``z[t, y_t] / tau - logsumexp(z[t] / tau)`` for the positions ``t = L - T - 1 .. L - 2`` (the
    ones that predict the targets), chunk by chunk. Backward:
    ``d/dz_j = (1[j = y_t] - softmax(z[t] / tau)_j) / tau``, written straight into one gradient
    of ``logits``'s shape and dtype (no full-size float32 temporaries, no slice gradients)."""

    @staticmethod
    def forward(ctx, logits, targets, temperature, chunk):
        offset = logits.shape[1] - targets.shape[1] - 1
        out = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)
        for b, lo, hi in _pieces(targets.shape, chunk):
            z = logits[b, offset + lo : offset + hi].float() / temperature  # (C, V)
            chosen = z.gather(-1, targets[b, lo:hi].unsqueeze(-1)).squeeze(-1)
            out[b, lo:hi] = chosen - torch.logsumexp(z, dim=-1)
        ctx.save_for_backward(logits, targets)
        ctx.temperature, ctx.chunk, ctx.offset = temperature, chunk, offset
        return out

    @staticmethod
    def backward(ctx, grad_out):
        logits, targets = ctx.saved_tensors
        tau, offset = ctx.temperature, ctx.offset
        grad = torch.zeros_like(logits)
        for b, lo, hi in _pieces(targets.shape, ctx.chunk):
            z = logits[b, offset + lo : offset + hi].float() / tau
            g_out = grad_out[b, lo:hi].float().unsqueeze(-1)  # (C, 1)
            g = torch.softmax(z, dim=-1).mul_(-g_out)
            g.scatter_add_(-1, targets[b, lo:hi].unsqueeze(-1), g_out)
            grad[b, offset + lo : offset + hi] = g.div_(tau)
        return grad, None, None, None


def _pieces(shape: torch.Size, chunk: int):
    """``(row, start, end)`` covering a ``(B, T)`` grid ``chunk`` positions of one row at a time."""
    for b in range(shape[0]):
        for lo in range(0, shape[1], chunk):
            yield b, lo, min(lo + chunk, shape[1])
