"""Random-weight models with a real model's shape, built in code (no hub): for measuring speed and
memory on machines that cannot download weights (``bench/gpu_check.sh``)."""

from __future__ import annotations

import torch

QWEN2_5_0_5B = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
"""Qwen2.5-0.5B-Instruct's ``config.json`` shape fields (494M parameters)."""


def build_qwen2_5_0_5b_shape(
    seed: int = 0, pad_token_id: int | None = None, dtype: torch.dtype = torch.float32
):
    """``Qwen2ForCausalLM`` with Qwen2.5-0.5B's shape and random weights, initialised directly in
    ``dtype`` (a bfloat16 model never exists in float32, which would double its peak memory)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**QWEN2_5_0_5B, pad_token_id=pad_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Qwen2ForCausalLM._from_config(config, dtype=dtype)
