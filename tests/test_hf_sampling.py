"""HF rollouts: per-row seeded sampling in batches, from the distribution the loss scores."""

import copy

import pytest
import torch

from darling.logprobs import response_logprobs
from darling.models import load_policy
from darling.rollout import hf
from darling.rollout.base import SamplingSpec
from darling.rollout.hf import HFRollout, SeededSampler, top_p_filter
from darling.tasks.chat import chat_prompt

PROMPTS = ["Name a colour.", "Name a planet of the solar system, please, with just the name."]


@pytest.fixture(scope="module")
def tiny():
    from omegaconf import OmegaConf

    spec = OmegaConf.create({"source": "tiny", "dtype": "float32", "gradient_checkpointing": False,
                             "lora": {"enabled": False}, "path": None})
    policy, tokenizer = load_policy(spec, seed=0)
    return policy, tokenizer


def _engine(tiny, n=4, max_batch_sequences=64, temperature=1.0, top_p=1.0, max_new_tokens=8):
    engine = HFRollout(SamplingSpec(n, temperature, top_p, max_new_tokens), max_batch_sequences)
    engine.bind(*tiny)
    return engine


def _prompts(tiny):
    return [chat_prompt(tiny[1], p) for p in PROMPTS]


def test_groups_do_not_depend_on_batching(tiny):
    prompts = _prompts(tiny)
    together = _engine(tiny).generate(prompts, [0, 1], seeds=[100, 200])
    alone = [_engine(tiny).generate([p], [g], seeds=[s]).texts
             for p, g, s in zip(prompts, [0, 1], [100, 200], strict=True)]
    one_row_per_call = _engine(tiny, max_batch_sequences=1).generate(
        prompts, [0, 1], seeds=[100, 200])
    assert together.texts == alone[0] + alone[1] == one_row_per_call.texts
    assert len(set(together.texts)) > 2  # a random model at T=1 gives different samples


def test_each_prompt_is_prefilled_once_and_samples_are_unchanged(tiny, monkeypatch):
    prompts = _prompts(tiny)
    embed = tiny[0].get_input_embeddings()
    seen = []
    handle = embed.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    try:
        shared = _engine(tiny).generate(prompts, [0, 1], seeds=[100, 200])
    finally:
        handle.remove()
    width = max(len(tiny[1](p, add_special_tokens=False)["input_ids"]) for p in prompts)
    assert seen[:2] == [(2, width - 1), (8, 1)]  # 2 distinct prompts once, then the 8 rows
    monkeypatch.setattr(hf, "shared_prefill", lambda *args: {})
    assert _engine(tiny).generate(prompts, [0, 1], seeds=[100, 200]).texts == shared.texts


def test_seeds_decide_the_samples(tiny):
    prompts = _prompts(tiny)
    a = _engine(tiny).generate(prompts, [0, 1], seeds=[1, 2]).texts
    assert _engine(tiny).generate(prompts, [0, 1], seeds=[1, 2]).texts == a
    assert _engine(tiny).generate(prompts, [0, 1], seeds=[3, 4]).texts != a
    # sample i of a prompt seeded s is the row seeded s + i, as in vLLM
    shifted = _engine(tiny, n=3).generate(prompts[:1], [0], seeds=[8]).texts
    assert shifted[1:] == _engine(tiny, n=2).generate(prompts[:1], [0], seeds=[9]).texts


POLLUTED = {
    "repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "min_p": 0.05, "top_k": 20,
    "typical_p": 0.9, "min_new_tokens": 8, "suppress_tokens": [11, 12, 13], "bad_words_ids": [[5]],
}
"""Settings instruct checkpoints ship in generation_config.json, each of which would reshape the
sampled distribution if it leaked into rollouts."""


def _polluted(model):
    model = copy.deepcopy(model)
    for key, value in POLLUTED.items():
        setattr(model.generation_config, key, value)
    return model


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_distribution_is_the_one_the_loss_scores(tiny, monkeypatch, temperature):
    """The model's own generation config sets processors that reshape the distribution; the
    sampler's log-probabilities of the drawn tokens still equal ``response_logprobs``."""
    policy, tokenizer = _polluted(tiny[0]), tiny[1]
    with torch.no_grad():  # sharpen the random model: penalties then move the distribution a lot
        policy.lm_head.weight.mul_(40)
    recorded = []

    class Recording(SeededSampler):
        def __call__(self, input_ids, scores):
            out = super().__call__(input_ids, scores)
            logp = torch.log_softmax(scores.float() / self.temperature, -1)
            recorded.append(logp.gather(1, out.argmax(-1, keepdim=True)).squeeze(1))
            return out

    monkeypatch.setattr(hf, "SeededSampler", Recording)
    rollouts = _engine((policy, tokenizer), temperature=temperature).generate(
        _prompts(tiny), [0, 1], seeds=[5, 6])
    sampled = torch.stack(recorded, dim=1)  # (N, steps)
    scored = response_logprobs(policy, rollouts.input_ids, rollouts.attention_mask,
                               rollouts.response_start, temperature)
    mask = rollouts.response_mask.bool()
    steps = sampled.shape[1]
    assert torch.allclose(sampled[mask[:, :steps]], scored[:, :steps][mask[:, :steps]], atol=1e-4)
    # the model's own generation config is left as it was
    assert policy.generation_config.repetition_penalty == 1.3
    assert policy.generation_config.no_repeat_ngram_size == 2


def test_model_generation_config_does_not_change_the_samples(tiny):
    texts = [_engine((m, tiny[1])).generate(_prompts(tiny), [0, 1], seeds=[3, 4]).texts
             for m in (tiny[0], _polluted(tiny[0]))]
    assert texts[0] == texts[1]


def test_top_p_filter_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.1, 0.4, 0.3, 0.2], [0.97, 0.01, 0.01, 0.01]]))
    kept = torch.isfinite(top_p_filter(logits, 0.6))
    # row 0: 0.4 (<0.6) then 0.3 reaches 0.7 -> {1, 2}; row 1: the top token alone
    assert kept.tolist() == [[False, True, True, False], [True, False, False, False]]
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_max_batch_sequences_must_be_positive():
    with pytest.raises(ValueError, match="max_batch_sequences"):
        HFRollout(SamplingSpec(), max_batch_sequences=0)
