"""Rollouts with Hugging Face ``generate`` on the policy itself (CPU and small GPU runs)."""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator, Sequence

import torch
from transformers import GenerationConfig

from darling.rollout.base import RolloutEngine, Rollouts, SamplingSpec, assemble_rollouts


def sampling_config(
    sampling: SamplingSpec, pad_token_id: int | None, eos_token_ids: Sequence[int]
) -> GenerationConfig:
    """The complete sampling configuration of a rollout: the rollout spec and nothing else.

    Plain ancestral sampling at ``temperature`` (and ``top_p``, which training refuses below 1):
    every other logits processor is explicitly neutral, so no field of a model's own
    ``generation_config.json`` (repetition penalty, n-gram ban, min-p, typical-p, suppressed or
    biased tokens, a minimum length...) changes the distribution that ``response_logprobs``
    scores.
    """
    return GenerationConfig(
        do_sample=True,
        num_beams=1,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=0,
        min_p=None,
        top_h=None,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        repetition_penalty=1.0,
        encoder_repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        encoder_no_repeat_ngram_size=0,
        bad_words_ids=None,
        sequence_bias=None,
        suppress_tokens=None,
        begin_suppress_tokens=None,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
        exponential_decay_length_penalty=None,
        guidance_scale=None,
        watermarking_config=None,
        renormalize_logits=False,
        remove_invalid_values=False,
        min_length=0,
        min_new_tokens=None,
        max_new_tokens=sampling.max_new_tokens,
        stop_strings=None,
        max_time=None,
        num_return_sequences=sampling.n_per_prompt,
        pad_token_id=pad_token_id,
        eos_token_id=list(eos_token_ids),
        use_cache=True,
    )


class HFRollout(RolloutEngine):
    """Samples from the live policy, so there are no weights to sync.

    Each prompt is sampled in its own ``generate`` call under its own seed, so a group's
    rollouts do not depend on which other prompts share the batch (or the process).
    """

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[str], group_ids: Sequence[Hashable], seeds: Sequence[int]
    ) -> Rollouts:
        tok = self.tokenizer
        device = next(self.model.parameters()).device
        eos_ids = _eos_ids(self.model, tok)
        config = sampling_config(self.sampling, tok.pad_token_id, eos_ids)
        was_training = self.model.training
        self.model.eval()
        prompt_ids, responses = [], []
        with _only_generation_config(self.model, config):
            for prompt, seed in zip(prompts, seeds, strict=True):
                ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
                torch.manual_seed(seed)
                out = self.model.generate(
                    input_ids=ids.to(device),
                    attention_mask=torch.ones_like(ids, device=device),
                    generation_config=config,
                )  # (n, P_i + T_i)
                prompt_ids.append(ids[0].tolist())
                responses.append([row.tolist() for row in out[:, ids.shape[1] :].cpu()])
        self.model.train(was_training)
        return assemble_rollouts(prompt_ids, responses, group_ids, tok, eos_ids)


_UNSET = object()


@contextlib.contextmanager
def _only_generation_config(model: torch.nn.Module, config: GenerationConfig) -> Iterator[None]:
    """Make ``config`` the model's own generation config for the duration.

    ``generate`` fills the fields of a passed config from ``model.generation_config``
    (transformers 5: every field left ``None``; 4.5x: every field equal to the library default,
    such as ``repetition_penalty=1.0``), so explicit neutral values alone cannot keep the model's
    settings out; with the model's config swapped for ``config`` there is nothing else to merge.
    A peft wrapper copies its config into the wrapped model, so both are swapped and restored.
    """
    holders = [model]
    if hasattr(model, "get_base_model"):
        holders.append(model.get_base_model())
    saved = [vars(m).get("generation_config", _UNSET) for m in holders]
    try:
        for m in holders:
            m.generation_config = config
        yield
    finally:
        for m, old in zip(holders, saved, strict=True):
            if old is _UNSET:
                del m.generation_config
            else:
                m.generation_config = old


def _eos_ids(model: torch.nn.Module, tokenizer) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = list(eos) if isinstance(eos, list) else [eos]
    ids.append(tokenizer.eos_token_id)
    return sorted({int(i) for i in ids if i is not None})
