"""Config pieces training and evaluation share: the ``rollout/`` and ``data`` schemas, the check
of fields a group config leaves to the user (``???``), and where the running Hydra job writes.

Training's whole schema is ``darling.train.config``, evaluation's ``darling.eval.config``; both
build on these, and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from darling.rollout.base import SamplingSpec


@dataclass
class RolloutSpec(SamplingSpec):
    """Sampling settings and the engine that samples."""

    engine: str = "hf"
    """hf (transformers generate on the policy) | vllm (colocated engine: vLLM's GPU build, or
    its CPU build from ``scripts/install_cpu.sh --vllm``)."""
    max_batch_sequences: int = 64
    """hf only: sequences sampled per ``generate`` call (prompts x n, chunked); results do not
    depend on it, memory does."""
    gpu_memory_utilization: float = 0.3
    """vLLM only: share of GPU memory for its weights and KV cache."""
    enable_sleep_mode: bool | None = None
    """vLLM only: free the engine's GPU memory during the policy update. None: on where vLLM
    has sleep mode (CUDA, ROCm, XPU), off on its CPU build; true where it has none is refused."""
    sleep_level: int = 1
    """vLLM only: 1 offloads the engine's weights to CPU memory while it sleeps; 2 discards them
    (no copy; every sync reloads all weights anyway), safe only where vLLM restores everything
    else the model holds (docs/training.md)."""
    max_prompt_tokens: int = "${data.max_prompt_tokens}"  # type: ignore[assignment]
    """vLLM only: longest prompt (default: data.max_prompt_tokens, which training checks); the KV
    cache is sized for max_prompt_tokens + max_new_tokens."""
    dtype: str = "bfloat16"
    """vLLM only: the engine's weight dtype (the policy's weights are cast to it at each sync)."""
    enforce_eager: bool = False
    """vLLM only: skip graph compilation and CUDA graphs (starts faster, samples slower); true on
    the CPU, where compiling dominates short runs."""
    cpu_kv_cache_gib: int = 1
    """vLLM's CPU build only: host memory for the KV cache, GiB (``VLLM_CPU_KVCACHE_SPACE``,
    which wins when set in the environment)."""


@dataclass
class DataSpec:
    """Prompt files (``darling.tasks.prompts``): JSONL, a JSON array, Parquet (verl) or
    ``hf:<dataset>[:<split>]``; plain or chat-message prompts, with ``answers`` /
    ``ground_truth`` (or verl's ``reward_model.ground_truth``, DeepScaleR's ``answer``)."""

    train_path: str | None = None
    """None: the built-in open-ended verifiable task's training prompts."""
    eval_path: str | None = None
    """None: the built-in task's held-out prompts (final measurement only)."""
    prompts_per_step: int = 2
    """Prompts per rollout step per process (each gives rollout.n_per_prompt rollouts)."""
    global_prompts_per_step: int | None = None
    """Prompts per rollout step over all processes (the paper's batch: 64 chat, 256 math); when
    set it replaces prompts_per_step by global_prompts_per_step / processes, which must divide
    it. None: prompts_per_step per process."""
    system_prompt: str | None = None
    """Put first in every prompt's chat (unless its messages bring their own system message)."""
    prompt_template: str | None = None
    """A string with ``{prompt}``, into which each prompt's text is put (e.g. a math
    answer-format instruction for DeepScaleR problems); None: the prompt as written."""
    max_prompt_tokens: int = 1024
    """Longest training prompt in tokens (chat template included); a longer one fails at start,
    naming its id, instead of running the update out of memory."""


def missing_value_errors(cfg: DictConfig) -> list[str]:
    """A group config with a required field left at ``???`` (``classifier=saved`` needs its
    directory, ``quality=reward_model`` its path, ``quality=judge`` its base_url and model)."""
    errors = []
    for group in MANDATORY_GROUPS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        # missing_keys names keys from the root of the node's config (classifier.directory)
        keys = sorted(k if k.startswith(f"{group}.") else f"{group}.{k}"
                      for k in OmegaConf.missing_keys(node))
        errors += [
            f"{key} is required by {node.get('_target_', f'the {group} config')}: pass "
            f"{key}=<value> (see the comment in its conf/{group}/*.yaml)"
            for key in keys
        ]
    return errors


MANDATORY_GROUPS = ("classifier", "quality", "diversity")
"""Groups whose configs may leave a field for the user to fill (``???``)."""


def hydra_run_dir() -> Path:
    """The current Hydra job's output directory."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)
