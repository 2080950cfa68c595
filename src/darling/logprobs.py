"""Per-token log-probabilities of sampled responses under a causal LM, without a full-vocabulary
float32 ``log_softmax``."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from darling.models.loading import transformers_model

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

    Compute: rows with the same prompt columns (the ``n`` rollouts of a group) share one forward
    of that prompt (``shared_prompt_logits``), so a step runs ``U P + B T`` token positions
    through the model instead of ``B (P + T)`` for ``U`` distinct prompts. The values equal the
    one-pass forward up to float rounding, and so do the gradients, which reach the prompt's
    keys and values from every row that shares it. Models that cannot return a key-value cache
    here (activation checkpointing turns it off in training) take the one-pass forward.
    """
    targets = input_ids[:, response_start:]  # (B, T)
    logits = shared_prompt_logits(model, input_ids, attention_mask, response_start)
    if logits is None:
        logits = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=mask_positions(attention_mask),
            logits_to_keep=targets.shape[1] + 1,
        ).logits  # (B, T + 1, V) (or (B, P + T, V) for a model that ignores logits_to_keep)
    return _ChosenLogprob.apply(logits, targets, temperature, chunk)


def mask_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows: ``cumsum(mask) - 1``, 0 on the padding. ``(B, L)``."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def prompt_cache(
    model: torch.nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
    rows: torch.Tensor,
) -> tuple[torch.Tensor, Any] | None:
    """Run ``U`` distinct left-padded prompts ``(U, P)`` through ``model`` once and return
    ``(logits at their last position (U, 1, V), key-value cache gathered to the rows)``: row
    ``b`` gets prompt ``rows[b]``'s keys and values (``rows``: ``(B,)``). None when the model
    returns no cache (activation checkpointing in training mode)."""
    out = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=mask_positions(prompt_mask),
        use_cache=True,
        logits_to_keep=1,
    )
    cache = out.get("cache", out.get("past_key_values"))
    if cache is None:
        return None
    cache.batch_select_indices(rows)
    return out.logits, cache


def shared_prompt_logits(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_start: int,
) -> torch.Tensor | None:
    """Logits at the ``T + 1`` last positions, ``(B, T + 1, V)``, with each distinct prompt run
    through the model once.

    The ``U`` distinct rows of ``input_ids[:, :P]`` (with their mask) are encoded once with a
    key-value cache gathered to the ``B`` rows (``prompt_cache``; ``inverse``, shape ``(B,)``), and
    the ``T`` response tokens attend to it. Position ``P - 1`` (the last prompt token, which
    predicts the first response token) comes from the prompt pass, positions ``P .. P + T - 1``
    from the response pass. Returns None (the caller runs the one-pass forward) when no two rows
    share a prompt, when the prompt is empty, when the model returns no cache (activation
    checkpointing in training mode), and for an FSDP2-sharded model: two forwards of a sharded
    module before one backward made the reduce-scattered gradients differ in the last bits
    between identical runs, and the forward calls would have to match across ranks.
    """
    start = response_start
    if start == 0 or model.training and _checkpointing(model) or _sharded(model):
        return None
    prompts, inverse = torch.unique(
        torch.cat([input_ids[:, :start], attention_mask[:, :start].to(input_ids.dtype)], dim=1),
        dim=0, return_inverse=True,
    )
    if len(prompts) == len(input_ids):
        return None
    encoded = prompt_cache(model, prompts[:, :start],
                           prompts[:, start:].to(attention_mask.dtype), inverse)
    if encoded is None:
        return None
    head, cache = encoded  # (U, 1, V), the B rows' prompt keys and values
    tail = model(
        input_ids=input_ids[:, start:],
        attention_mask=attention_mask,
        position_ids=mask_positions(attention_mask)[:, start:],
        use_cache=True,
        **{cache_argument(model): cache},
    ).logits  # (B, T, V)
    return torch.cat([head[inverse], tail], dim=1)


def _sharded(model: torch.nn.Module) -> bool:
    """Whether FSDP2 manages ``model`` (``darling.train.strategies.shard_model`` marks it)."""
    return bool(getattr(model, "_is_fsdp_managed_module", False))


def _checkpointing(model: torch.nn.Module) -> bool:
    """Whether activation checkpointing is on (transformers >= 5.24 renamed the attribute)."""
    base = transformers_model(model)
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(base), name):
            return bool(getattr(base, name))
    return False


def cache_argument(model: torch.nn.Module) -> str:
    """The forward's key-value cache argument: ``cache`` (transformers >= 5.24) or
    ``past_key_values`` (before)."""
    forward = inspect.signature(transformers_model(model).forward).parameters
    return "cache" if "cache" in forward else "past_key_values"


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
