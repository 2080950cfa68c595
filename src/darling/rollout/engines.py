"""The rollout engines a ``rollout/`` config can name, and the factory that builds one."""

from __future__ import annotations

import importlib

from omegaconf import DictConfig

from darling.rollout.base import RolloutEngine, SamplingSpec

ENGINES = {
    "hf": ("darling.rollout.hf:HFRollout", ("max_batch_sequences",)),
    "vllm": (
        "darling.rollout.vllm:VLLMRollout",
        ("gpu_memory_utilization", "enable_sleep_mode", "sleep_level", "max_prompt_tokens",
         "dtype", "enforce_eager", "cpu_kv_cache_gib"),
    ),
}
"""engine name -> (class, the rollout config fields it takes besides the sampling settings)"""


def build_engine(rollout: DictConfig) -> RolloutEngine:
    """The engine ``rollout.engine`` with the sampling settings and options of ``rollout``
    (a ``darling.config.RolloutSpec``); its module is imported only now (vLLM is an extra)."""
    target, options = ENGINES[rollout.engine]
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    sampling = SamplingSpec(**{k: rollout[k] for k in SamplingSpec.__dataclass_fields__})
    return cls(sampling, **{k: rollout[k] for k in options})
