"""The rollout interface: prompts in, n sampled responses per prompt out, each with its group id."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

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
    ``response_mask``: ``(N, T)``, 1 on response tokens up to and including the first EOS.
    """

    texts: list[str]
    group_ids: list[Hashable]
    prompt_index: list[int]
    """Position of each rollout's prompt in the prompt list passed to ``generate``."""
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    response_start: int

    @property
    def num_tokens(self) -> int:
        return int(self.response_mask.sum())


class RolloutEngine:
    """Interface: ``bind`` the policy once, ``generate`` each step, ``sync`` after updates."""

    def __init__(self, sampling: SamplingSpec):
        self.sampling = sampling

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
) -> Rollouts:
    """Pack per-prompt token ids into one left-padded-prompt, right-padded-response batch.

    ``prompt_ids[i]``: the tokens of prompt i; ``responses[i]``: its sampled responses (token
    lists, possibly padded after EOS). The response mask stops after the first EOS and at each
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
    )
