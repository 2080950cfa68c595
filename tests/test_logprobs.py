"""Response log-probabilities with one prompt forward per group (``shared_prompt_logits``).

The shared path must give the values and gradients of the one-pass forward, for full models and
LoRA, with left-padded prompts of different lengths and right-padded responses, and must run
fewer token positions through the model.
"""

from __future__ import annotations

import pytest
import torch

from darling.logprobs import response_logprobs
from darling.models.tiny import build_tiny_llama

VOCAB, START = 300, 6


def _one_pass(model, ids, attn, start, temperature):
    """The reference: one forward over every row, full-vocabulary float32 log_softmax."""
    position_ids = (attn.long().cumsum(-1) - 1).clamp_min(0)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids).logits
    logits = logits[:, start - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, ids[:, start:].unsqueeze(-1)).squeeze(-1)


def _groups():
    """Three groups (3, 3 and 1 rows) of left-padded prompts of lengths 6, 4 and 5, responses of
    5 tokens, two of them right-padded after an early end."""
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, VOCAB, (n,), generator=g) for n in (6, 4, 5)]
    rows, masks = [], []
    for prompt, n in zip(prompts, (3, 3, 1), strict=True):
        for _ in range(n):
            pad = START - len(prompt)
            rows.append(torch.cat([torch.zeros(pad, dtype=torch.long), prompt,
                                   torch.randint(1, VOCAB, (5,), generator=g)]))
            masks.append(torch.cat([torch.zeros(pad), torch.ones(len(prompt) + 5)]).long())
    ids, attn = torch.stack(rows), torch.stack(masks)
    attn[1, -2:] = 0  # ended early: response padding
    attn[4, -1:] = 0
    return ids, attn


def _lora(model):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj",
                                                                                "o_proj"]))
    with torch.no_grad():  # non-zero B so the adapters change the forward
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    return model


@pytest.mark.parametrize("lora", [False, True])
def test_shared_prompt_values_and_gradients_equal_one_pass(lora):
    model = build_tiny_llama(VOCAB, seed=0)
    model = _lora(model) if lora else model
    model.train()
    ids, attn = _groups()
    mask = attn[:, START:].bool()
    params = [p for p in model.parameters() if p.requires_grad]

    expected = _one_pass(model, ids, attn, START, 0.7)
    got = response_logprobs(model, ids, attn, START, 0.7)
    torch.testing.assert_close(got[mask], expected[mask], rtol=1e-5, atol=1e-5)

    weights = torch.randn(mask.shape, generator=torch.Generator().manual_seed(2)) * mask
    grads_expected = torch.autograd.grad((expected * weights).sum(), params)
    grads_got = torch.autograd.grad(
        (response_logprobs(model, ids, attn, START, 0.7) * weights).sum(), params)
    for g_got, g_exp in zip(grads_got, grads_expected, strict=True):
        torch.testing.assert_close(g_got, g_exp, rtol=1e-4, atol=1e-6)


def test_each_prompt_runs_through_the_model_once():
    model = build_tiny_llama(VOCAB, seed=0)
    ids, attn = _groups()
    seen = []
    model.model.embed_tokens.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    response_logprobs(model, ids, attn, START, 1.0)
    assert seen == [(3, START), (7, 5)]  # 3 distinct prompts, then the 7 responses
    positions = sum(a * b for a, b in seen)
    assert positions == 3 * START + 7 * 5 < ids.numel()


def test_no_shared_prompt_or_checkpointing_takes_the_one_pass_forward():
    model = build_tiny_llama(VOCAB, seed=0)
    ids, attn = _groups()
    seen = []
    model.model.embed_tokens.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    distinct = [0, 3, 6]
    response_logprobs(model, ids[distinct], attn[distinct], START, 1.0)
    assert seen == [(3, ids.shape[1])]

    seen.clear()
    model.gradient_checkpointing_enable()
    model.train()
    mask = attn[:, START:].bool()
    got = response_logprobs(model, ids, attn, START, 1.0)
    assert seen == [tuple(ids.shape)]
    torch.testing.assert_close(got[mask], _one_pass(model, ids, attn, START, 1.0)[mask],
                               rtol=1e-5, atol=1e-5)
