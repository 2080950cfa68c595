"""HF rollouts sample exactly the distribution that ``response_logprobs`` scores."""

import copy

import pytest
import torch

from darling.logprobs import response_logprobs
from darling.models import load_policy
from darling.rollout.base import SamplingSpec
from darling.rollout.hf import HFRollout
from darling.train.data import chat_prompt

POLLUTED = {
    "repetition_penalty": 1.1, "no_repeat_ngram_size": 2, "min_p": 0.05, "top_k": 20,
    "typical_p": 0.9, "min_new_tokens": 3, "suppress_tokens": [11, 12, 13],
}
"""Settings several instruct checkpoints ship in generation_config.json."""


@pytest.fixture(scope="module")
def tiny(request):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=tiny"])
    return load_policy(cfg.model, seed=0)


def _polluted(model):
    model = copy.deepcopy(model)
    for key, value in POLLUTED.items():
        setattr(model.generation_config, key, value)
    return model


def _capture_scores(model, store):
    """Make the model's ``generate`` also return its processed scores, kept in ``store``."""
    original = model.generate

    def generate(**kwargs):
        config = copy.deepcopy(kwargs.pop("generation_config", None))
        if config is None:
            kwargs.update(output_scores=True, return_dict_in_generate=True)
        else:
            config.output_scores, config.return_dict_in_generate = True, True
        out = original(generation_config=config, **kwargs)
        store.append(torch.stack(out.scores, dim=1))  # (n, T, V)
        return out.sequences

    model.generate = generate


def test_generate_scores_equal_response_logprobs_despite_model_generation_config(tiny):
    model, tokenizer = tiny
    model = _polluted(model)
    engine = HFRollout(SamplingSpec(n_per_prompt=3, temperature=0.7, max_new_tokens=6))
    engine.bind(model, tokenizer)
    scores = []
    _capture_scores(model, scores)
    prompts = [chat_prompt(tokenizer, p) for p in ("Name a color.", "Name a large mammal, please.")]
    rollouts = engine.generate(prompts, [0, 1], seeds=[5, 6])

    with torch.no_grad():
        logp = response_logprobs(model, rollouts.input_ids, rollouts.attention_mask,
                                 rollouts.response_start, temperature=0.7)  # (N, T)
    start = rollouts.response_start
    for j, group_scores in enumerate(scores):
        rows = [i for i, p in enumerate(rollouts.prompt_index) if p == j]
        steps = group_scores.shape[1]
        targets = rollouts.input_ids[rows, start : start + steps]
        sampled = torch.log_softmax(group_scores.float(), -1).gather(-1, targets.unsqueeze(-1))
        mask = rollouts.response_mask[rows, :steps].bool()
        torch.testing.assert_close(sampled.squeeze(-1)[mask], logp[rows, :steps][mask],
                                   atol=1e-4, rtol=1e-4)
    # the model's own generation config is left as it was
    assert model.generation_config.repetition_penalty == 1.1
    assert model.generation_config.no_repeat_ngram_size == 2


def test_model_generation_config_does_not_change_the_samples(tiny):
    model, tokenizer = tiny
    spec = SamplingSpec(n_per_prompt=4, temperature=1.0, max_new_tokens=8)
    prompts = [chat_prompt(tokenizer, "Name a fruit.")]
    texts = []
    for m in (model, _polluted(model)):
        engine = HFRollout(spec)
        engine.bind(m, tokenizer)
        texts.append(engine.generate(prompts, [0], seeds=[3]).texts)
    assert texts[0] == texts[1]
