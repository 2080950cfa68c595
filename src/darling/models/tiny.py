"""A tiny random-initialised Llama (about 3.2M parameters) for tests, built in code.

It uses the SmolLM2 tokenizer so prompts, chat template and padding behave as in real runs.
"""

from __future__ import annotations

import torch

TINY_HEAD_DIM = 32
"""The smallest head size vLLM's CPU attention accepts."""


def build_tiny_llama(vocab_size: int, seed: int = 0, pad_token_id: int | None = None):
    """``LlamaForCausalLM`` with hidden 64, 2 layers, 4 heads of 32 dimensions, 2 KV heads, tied
    embeddings. Heads of 32 (wider than hidden / heads = 16) because vLLM's CPU attention takes
    head sizes 32, 64, 80 and up, so the same model runs under ``rollout=vllm``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=TINY_HEAD_DIM,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)
