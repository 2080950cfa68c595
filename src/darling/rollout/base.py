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
        self, prompts: Sequence[str], group_ids: Sequence[Hashable], seed: int
    ) -> Rollouts:
        """Sample ``n_per_prompt`` responses to each (already chat-formatted) prompt."""
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
