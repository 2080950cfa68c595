"""Rollouts from a vLLM engine colocated with the policy on the same GPU (``rollout=vllm``).

The engine runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so that ``sync`` can copy the
policy's weights straight into vLLM's model with its ``load_weights`` (tensor parallel size 1).
With ``enable_sleep_mode`` the engine releases its KV cache while the policy trains.
Needs the ``gpu`` extra (``pip install 'darling[gpu]'``).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from typing import Any

import torch

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

        tok = self.tokenizer
        if self.enable_sleep_mode:
            self.llm.wake_up()
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
            self.llm.sleep(level=1)
        responses = [[list(c.token_ids) for c in out.outputs] for out in outputs]
        return assemble_rollouts(prompt_ids, responses, group_ids, tok, [tok.eos_token_id])

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the policy's current weights (LoRA merged) into the vLLM model."""
        if self.llm is None:
            return
        if self.enable_sleep_mode:
            self.llm.wake_up(tags=["weights"]) if _accepts_tags(self.llm) else self.llm.wake_up()
        merged = hasattr(self.model, "merge_adapter")
        if merged:
            self.model.merge_adapter()
        base = self.model.get_base_model() if merged else self.model
        state = {
            name.replace(".base_layer", ""): p
            for name, p in base.state_dict().items()
            if "lora_" not in name
        }
        _vllm_model(self.llm).load_weights(state.items())
        if merged:
            self.model.unmerge_adapter()
        if self.enable_sleep_mode:
            self.llm.sleep(level=1)


def _vllm_model(llm: Any) -> torch.nn.Module:
    """vLLM's model object; its attribute path differs between engine versions."""
    executor = llm.llm_engine.model_executor
    worker = executor.driver_worker
    worker = getattr(worker, "worker", worker)
    return worker.model_runner.model


def _accepts_tags(llm: Any) -> bool:
    import inspect

    return "tags" in inspect.signature(llm.wake_up).parameters
