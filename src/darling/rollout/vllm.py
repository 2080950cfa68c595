"""Rollouts from a vLLM engine colocated with the policy on the same GPU (``rollout=vllm``).

The engine runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so that ``sync`` hands the
policy's tensors straight to vLLM's model, ``LLM.apply_model(lambda m: m.load_weights(...))``,
without serialising them (tensor parallel size 1).

With ``enable_sleep_mode`` the engine holds GPU memory only while it samples. One training step:

    generate: wake the KV cache -> sample -> sleep(level=2): weights and KV cache are discarded
    update:   the policy trains with the memory vLLM released
    sync:     wake the weights -> load the policy's current weights into them

Level 2 (not 1) because every update is followed by a sync that overwrites all weights, so
backing them up to CPU memory (level 1) would copy the whole model twice per step for nothing.
Needs the ``gpu`` extra (``pip install 'darling[gpu]'``).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from typing import Any

import torch

from darling.models.merged import merged_weights
from darling.rollout.base import RolloutEngine, Rollouts, SamplingSpec, assemble_rollouts


class VLLMRollout(RolloutEngine):
    def __init__(
        self,
        sampling: SamplingSpec,
        gpu_memory_utilization: float = 0.3,
        enable_sleep_mode: bool = True,
    ):
        super().__init__(sampling)
        self.gpu_memory_utilization = gpu_memory_utilization
        self.enable_sleep_mode = enable_sleep_mode
        self.llm: Any = None
        self._asleep: set[str] = set()
        """Which of vLLM's memory pools ("weights", "kv_cache") are released right now."""

    def bind(self, model: torch.nn.Module, tokenizer) -> None:
        super().bind(model, tokenizer)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.llm = LLM(
            model=base.config._name_or_path,
            tokenizer=base.config._name_or_path,
            dtype=str(next(base.parameters()).dtype).removeprefix("torch."),
            gpu_memory_utilization=self.gpu_memory_utilization,
            enable_sleep_mode=self.enable_sleep_mode,
            tensor_parallel_size=1,
        )
        self.sync()

    def generate(
        self, prompts: Sequence[str], group_ids: Sequence[Hashable], seeds: Sequence[int]
    ) -> Rollouts:
        from vllm import SamplingParams

        if "weights" in self._asleep:  # two generates without an update between (evaluation)
            self.sync()
        self._wake("kv_cache")
        tok = self.tokenizer
        params = [
            SamplingParams(
                n=self.sampling.n_per_prompt,
                temperature=self.sampling.temperature,
                top_p=self.sampling.top_p,
                max_tokens=self.sampling.max_new_tokens,
                seed=seed,
            )
            for seed in seeds
        ]
        prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=False
        )
        if self.enable_sleep_mode:
            self.llm.sleep(level=2)
            self._asleep = {"weights", "kv_cache"}
        responses = [[list(c.token_ids) for c in out.outputs] for out in outputs]
        return assemble_rollouts(prompt_ids, responses, group_ids, tok, [tok.eos_token_id])

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the policy's current weights (LoRA folded in, see ``merged_weights``) into the vLLM
        model."""
        if self.llm is None:
            return
        self._wake("weights")
        self.llm.apply_model(lambda vllm_model: vllm_model.load_weights(merged_weights(self.model)))

    def _wake(self, pool: str) -> None:
        if pool in self._asleep:
            self.llm.wake_up(tags=[pool])
            self._asleep.discard(pool)
