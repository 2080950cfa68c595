"""The rollout interface: prompts in, n sampled responses per prompt out, each with its group id."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class SamplingSpec:
    """Sampling settings shared by every engine (the ``rollout/`` config group)."""

    n_per_prompt: int = 8
    """Rollouts per prompt (paper: 8)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 32


@dataclass
class Rollouts:
    """A batch of N = (prompts x n) sampled responses.

    ``input_ids``/``attention_mask``: ``(N, P + T)``, left-padded prompt then response;
    ``response_mask``: ``(N, T)``, 1 on response tokens up to and including the first EOS;
    ``sampler_logprobs``: ``(N, T)`` float32, the engine's own log-probability of each sampled
    token under the distribution it sampled from (0 where masked), or None for an engine that
    samples from the policy itself (nothing to compare).
    """

    texts: list[str]
    group_ids: list[Hashable]
    prompt_index: list[int]
    """Position of each rollout's prompt in the prompt list passed to ``generate``."""
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    response_start: int
    sampler_logprobs: torch.Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return int(self.response_mask.sum())


@dataclass
class Samples:
    """Generated texts with the group id and the prompt row of each, all of length N: what
    quality, partition and diversity read, in training (a step's rollouts) and in evaluation (the
    k generations of each held-out prompt)."""

    texts: list[str]
    group_ids: list[Hashable]
    rows: list[Any]
    """The prompt row (``darling.tasks.prompts.PromptRow``) each text answers."""

    @classmethod
    def of(cls, rollouts: Rollouts, rows: Sequence[Any]) -> Samples:
        """The texts of ``rollouts`` sampled from the prompts of ``rows`` (in ``generate``'s
        order)."""
        return cls(rollouts.texts, rollouts.group_ids, [rows[i] for i in rollouts.prompt_index])

    def subset(self, indices: Sequence[int]) -> Samples:
        """The samples at ``indices``, in that order."""
        return Samples([self.texts[i] for i in indices], [self.group_ids[i] for i in indices],
                       [self.rows[i] for i in indices])


SEED_SAMPLE_BITS = 36
"""Bits of a seed that number the samples of one run and stream: ``2**36`` (6.9e10) samples."""
SEED_STREAM_BITS = 1
"""One bit tells training (stream 0) from evaluation (stream 1) samples of the same run seed."""
MAX_RUN_SEED = 2 ** (63 - SEED_SAMPLE_BITS - SEED_STREAM_BITS) - 1
"""The largest run seed (67,108,863) whose sample seeds still fit in 63 bits."""
TRAIN_STREAM, EVAL_STREAM = 0, 1


def group_seeds(
    run_seed: int, group_ids: Sequence[int], n_per_prompt: int, stream: int = TRAIN_STREAM
) -> list[int]:
    """The sampling seed of each group: ``((run_seed << 1 | stream) << 36) + g * n``.

    Every engine seeds a group's request with this value; vLLM gives the i-th of the n samples
    of a seeded request the seed ``seed + i``, so group ``g`` owns the block
    ``[base + g * n, base + (g + 1) * n)``. Blocks of distinct groups never overlap, training
    (``stream=0``) and evaluation (``stream=1``) of one run seed use disjoint ranges, distinct run
    seeds use disjoint ranges, and every seed fits in 63 bits. ``group_ids`` are non-negative
    integers (the prompt-stream position in training, the prompt index in evaluation); the seed
    depends only on (run seed, stream, group, n), never on batching or the number of processes.

    >>> group_seeds(0, [0, 1, 2], 8)
    [0, 8, 16]
    >>> group_seeds(0, [0], 8, stream=1) == [2**36]
    True
    """
    if not 0 <= run_seed <= MAX_RUN_SEED:
        raise ValueError(f"seed={run_seed}: must be in [0, {MAX_RUN_SEED}]")
    if stream not in (TRAIN_STREAM, EVAL_STREAM):
        raise ValueError(f"stream={stream}: must be {TRAIN_STREAM} (train) or {EVAL_STREAM} (eval)")
    if n_per_prompt < 1:
        raise ValueError(f"n_per_prompt={n_per_prompt}: must be >= 1")
    base = ((run_seed << SEED_STREAM_BITS) | stream) << SEED_SAMPLE_BITS
    seeds = []
    for g in group_ids:
        g = int(g)
        if g < 0 or (g + 1) * n_per_prompt > 2**SEED_SAMPLE_BITS:
            raise ValueError(
                f"group {g} with {n_per_prompt} samples is outside the seed space "
                f"(0 <= group and (group + 1) * n <= 2**{SEED_SAMPLE_BITS})"
            )
        seeds.append(base + g * n_per_prompt)
    return seeds


class RolloutEngine:
    """Interface: ``bind`` the policy once, ``generate`` each step, ``sync`` after updates."""

    def __init__(self, sampling: SamplingSpec):
        self.sampling = sampling

    def check_model(self, config) -> None:
        """Refuse, before anything starts, a model config this engine cannot serve."""

    def bind(self, model: torch.nn.Module, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer

    def generate(
        self, prompts: Sequence[str], group_ids: Sequence[Hashable], seeds: Sequence[int]
    ) -> Rollouts:
        """Sample ``n_per_prompt`` responses to each (already chat-formatted) prompt, prompt i
        under ``seeds[i]``."""
        raise NotImplementedError

    def sync(self) -> None:
        """Push updated policy weights to the engine (no-op when it samples from the policy)."""

    def close(self) -> None:
        """Release what ``bind`` acquired (an engine's memory); ``bind`` may be called again."""


def eos_ids(model: torch.nn.Module, tokenizer) -> list[int]:
    """Every token that ends a response: the model's ``generation_config.eos_token_id`` (one id
    or a list, e.g. Llama-3's end-of-turn and end-of-text) and the tokenizer's EOS. Both engines
    stop there, so the response mask ends there too."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = list(eos) if isinstance(eos, list) else [eos]
    ids.append(tokenizer.eos_token_id)
    return sorted({int(i) for i in ids if i is not None})


def response_mask_from_eos(response_ids: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """1 on every response position up to and including the first EOS token, else 0.

    Padding after EOS often *is* the EOS id (SmolLM2: pad == eos), so the mask is positional,
    never "token != pad". ``response_ids``: ``(N, T)`` -> ``(N, T)`` long.

    >>> response_mask_from_eos(torch.tensor([[5, 2, 2], [5, 6, 7]]), [2]).tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
    is_eos = torch.zeros_like(response_ids, dtype=torch.bool)
    for eos in eos_ids:
        is_eos |= response_ids == eos
    eos_seen_before = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return (~eos_seen_before).long()


def assemble_rollouts(
    prompt_ids: Sequence[Sequence[int]],
    responses: Sequence[Sequence[Sequence[int]]],
    group_ids: Sequence[Hashable],
    tokenizer,
    eos_ids: Sequence[int],
    logprobs: Sequence[Sequence[Sequence[float]]] | None = None,
) -> Rollouts:
    """Pack per-prompt token ids into one left-padded-prompt, right-padded-response batch.

    ``prompt_ids[i]``: the tokens of prompt i; ``responses[i]``: its sampled responses (token
    lists, possibly padded after EOS); ``logprobs[i][j]``, when given, the sampler's log-prob of
    each token of ``responses[i][j]``. The response mask stops after the first EOS and at each
    response's own length.
    """
    pad = tokenizer.pad_token_id
    width = max(len(p) for p in prompt_ids)
    flat = [(i, list(r)) for i, group in enumerate(responses) for r in group]
    length = max(1, max(len(r) for _, r in flat))
    response_ids = torch.tensor([r + [pad] * (length - len(r)) for _, r in flat])
    within = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for _, r in flat])
    response_mask = response_mask_from_eos(response_ids, eos_ids) * within
    prompt_index = [i for i, _ in flat]
    prompts = torch.tensor([[pad] * (width - len(prompt_ids[i])) + list(prompt_ids[i])
                            for i in prompt_index])
    prompt_mask = torch.tensor([[0] * (width - len(prompt_ids[i])) + [1] * len(prompt_ids[i])
                                for i in prompt_index])
    sampler_logprobs = None
    if logprobs is not None:
        flat_lp = [list(lp) for group in logprobs for lp in group]
        sampler_logprobs = torch.tensor(
            [lp + [0.0] * (length - len(lp)) for lp in flat_lp], dtype=torch.float32
        ) * response_mask
    texts = [
        tokenizer.decode(ids[mask.bool()], skip_special_tokens=True).strip()
        for ids, mask in zip(response_ids, response_mask, strict=True)
    ]
    return Rollouts(
        texts=texts,
        group_ids=[group_ids[i] for i in prompt_index],
        prompt_index=prompt_index,
        input_ids=torch.cat([prompts, response_ids], dim=1),
        attention_mask=torch.cat([prompt_mask, response_mask], dim=1),
        response_mask=response_mask,
        response_start=width,
        sampler_logprobs=sampler_logprobs,
    )
