"""Rollouts with Hugging Face ``generate`` on the policy itself (CPU and small GPU runs).

All prompts of a call are sampled together, ``max_batch_sequences`` rows per ``generate`` call
(left-padded prompts, each repeated ``n_per_prompt`` times). Sampling does not use ``generate``'s
own sampler, whose random stream is shared by the whole batch: ``SeededSampler`` draws row ``b``'s
token with row ``b``'s own generator, seeded ``seeds[p] + i`` for sample ``i`` of prompt ``p`` (the
rule vLLM applies to a seeded request), and hands ``generate`` scores under which greedy decoding
picks exactly that token. A group's rollouts therefore depend on its seed and its prompt only,
not on which other prompts share the batch, the chunk size, or the process.

Each distinct prompt of a chunk is encoded once (``shared_prefill``): its key-value cache is
gathered to the prompt's ``n`` rows before ``generate`` runs, which then computes only the last
prompt token and the new ones.

The generation config is built from the rollout spec alone, with every logits processor neutral,
so nothing of the model's own ``generation_config`` (repetition penalty, ``min_p``, ...) changes
the distribution: rollouts are sampled from ``softmax(logits / temperature)`` (top-p filtered when
``top_p < 1``), the distribution ``darling.logprobs.response_logprobs`` scores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from darling.errors import ConfigError
from darling.logprobs import cache_argument, prompt_cache
from darling.models.loading import transformers_model
from darling.rollout.base import (
    RolloutEngine,
    Rollouts,
    SamplingSpec,
    assemble_rollouts,
    eos_ids,
)


class HFRollout(RolloutEngine):
    """Samples from the live policy, so there are no weights to sync."""

    def __init__(self, sampling: SamplingSpec, max_batch_sequences: int = 64):
        super().__init__(sampling)
        if max_batch_sequences < 1:
            raise ConfigError(f"rollout.max_batch_sequences={max_batch_sequences}: must be >= 1")
        self.max_batch_sequences = max_batch_sequences

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[str], group_ids: Sequence[Hashable], seeds: Sequence[int]
    ) -> Rollouts:
        n, tok = self.sampling.n_per_prompt, self.tokenizer
        device = next(self.model.parameters()).device
        prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        rows = [(p, i) for p in range(len(prompts)) for i in range(n)]  # (prompt, sample)
        eos = eos_ids(self.model, tok)
        config = sampling_generation_config(self.sampling.max_new_tokens, tok.pad_token_id, eos)
        was_training = self.model.training
        self.model.eval()
        samples: list[list[int]] = []
        for start in range(0, len(rows), self.max_batch_sequences):
            chunk = rows[start : start + self.max_batch_sequences]
            ids, mask = _left_pad([prompt_ids[p] for p, _ in chunk], tok.pad_token_id)
            sampler = SeededSampler(
                [seeds[p] + i for p, i in chunk], self.sampling.temperature, self.sampling.top_p
            )
            ids, mask = ids.to(device), mask.to(device)
            with neutral_generation_config(self.model, config):
                out = self.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    generation_config=config,
                    logits_processor=LogitsProcessorList([sampler]),
                    **shared_prefill(self.model, ids, mask, [p for p, _ in chunk]),
                )  # (len(chunk), width + T)
            samples += out[:, ids.shape[1] :].cpu().tolist()
        self.model.train(was_training)
        responses = [samples[p * n : (p + 1) * n] for p in range(len(prompts))]
        return assemble_rollouts(prompt_ids, responses, group_ids, tok, eos)


def shared_prefill(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, prompt_of_row: Sequence[int]
) -> dict[str, object]:
    """``generate`` keyword arguments that hand it the key-value cache of ``ids[:, :-1]`` with
    each distinct prompt encoded once: rows ``b`` with equal ``prompt_of_row[b]`` share it (the
    ``n`` samples of a prompt). ``ids``, ``mask``: ``(B, W)`` left-padded. ``generate`` then runs
    only the last prompt token and the new ones, so a chunk's prefill costs ``U (W - 1)`` token
    positions instead of ``B (W - 1)`` for ``U`` distinct prompts. Empty (plain ``generate``)
    when every row has its own prompt or the prompt is a single token."""
    if ids.shape[1] < 2 or len(set(prompt_of_row)) == len(prompt_of_row):
        return {}
    rows = list(prompt_of_row)
    distinct = list(dict.fromkeys(rows))
    first = torch.tensor([rows.index(p) for p in distinct], device=ids.device)
    inverse = torch.tensor([distinct.index(p) for p in rows], device=ids.device)
    encoded = prompt_cache(model, ids[first, :-1], mask[first, :-1], inverse)
    return {} if encoded is None else {cache_argument(model): encoded[1]}


class SeededSampler(LogitsProcessor):
    """Draw each row's next token from ``softmax(scores / temperature)`` (top-p filtered) with
    that row's own ``torch.Generator``; return scores that are 0 at the drawn token and ``-inf``
    elsewhere, so that greedy decoding emits it. ``scores``: ``(B, V)`` -> ``(B, V)``."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float = 1.0):
        self.seeds, self.temperature, self.top_p = list(seeds), temperature, top_p
        self._generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._generators is None:  # on the scores' device, created at the first step
            self._generators = [
                torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds
            ]
        probs = torch.softmax(top_p_filter(scores.float() / self.temperature, self.top_p), -1)
        tokens = torch.cat([
            torch.multinomial(row, 1, generator=g)
            for row, g in zip(probs, self._generators, strict=True)
        ])  # (B,)
        picked = torch.full_like(scores, float("-inf"))
        return picked.scatter_(1, tokens[:, None], 0.0)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability mass
    reaches ``top_p`` (always the most likely one), set the rest to ``-inf``. ``(B, V)`` ->
    ``(B, V)``; ``top_p >= 1`` returns ``logits`` unchanged.

    >>> top_p_filter(torch.log(torch.tensor([[0.5, 0.3, 0.2]])), 0.7).exp().tolist()
    [[0.5, 0.30000001192092896, 0.0]]
    """
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    mass_before = probs.cumsum(-1) - probs  # mass of the more likely tokens
    drop_sorted = mass_before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


@contextlib.contextmanager
def neutral_generation_config(model: torch.nn.Module, config: GenerationConfig):
    """Within the block, ``model``'s own ``generation_config`` is ``config``.

    ``generate`` fills every field a passed config leaves ``None`` from the model's
    ``generation_config`` (repetition penalty, ``no_repeat_ngram_size``, bad words, forced
    tokens, ...), so passing a config is not enough to keep them out: the model's is swapped.
    """
    base = transformers_model(model)
    saved = base.generation_config
    base.generation_config = config
    try:
        yield
    finally:
        base.generation_config = saved


def sampling_generation_config(
    max_new_tokens: int, pad_token_id: int, eos_token_ids: Sequence[int]
) -> GenerationConfig:
    """The ``GenerationConfig`` for ``SeededSampler``: greedy over its scores, nothing else set,
    so every processor that would reshape the distribution is off (see
    ``neutral_generation_config``)."""
    return GenerationConfig(
        do_sample=False,
        num_beams=1,
        max_new_tokens=max_new_tokens,
        pad_token_id=pad_token_id,
        eos_token_id=list(eos_token_ids),
    )


def _left_pad(sequences: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, attention_mask)``, both ``(B, max length)``, padded on the left."""
    width = max(len(s) for s in sequences)
    ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in sequences])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
    return ids, mask
