"""Which of the vLLM APIs that ``darling.rollout.vllm`` calls a vLLM wheel has, read from the
wheel's source text (nothing is imported, so a GPU wheel can be checked on a CPU machine).

    pip download --no-deps --only-binary :all: vllm==0.16.0 -d wheels
    python scripts/check_vllm_apis.py wheels/*.whl

Prints one line per wheel: the APIs it lacks, or "none". docs/training.md lists the versions
checked so far.
"""

from __future__ import annotations

import re
import sys
import zipfile

CHECKS = {
    "LLM(enforce_eager, enable_sleep_mode, seed, gpu_memory_utilization)": (
        "vllm/engine/arg_utils.py",
        [r"enforce_eager:", r"enable_sleep_mode:", r"seed:", r"gpu_memory_utilization:"]),
    "load_format='dummy'": ("vllm/model_executor/model_loader/__init__.py", [r"dummy"]),
    "logprobs_mode='processed_logprobs'": ("vllm/config/model.py", [r"processed_logprobs"]),
    "distributed_executor_backend='external_launcher'": (
        "vllm/config/parallel.py", [r"external_launcher"]),
    "LLM.generate(prompts, params, use_tqdm)": (
        "vllm/entrypoints/llm.py", [r"def generate\(", r"use_tqdm"]),
    "LLM.collective_rpc(method, kwargs=...)": (
        "vllm/entrypoints/llm.py", [r"def collective_rpc\(", r"kwargs: dict"]),
    "LLM.reset_prefix_cache()": ("vllm/entrypoints/llm.py", [r"def reset_prefix_cache\("]),
    "LLM.sleep(level), LLM.wake_up(tags)": (
        "vllm/entrypoints/llm.py",
        [r"def sleep\(self, level: int = 1", r"def wake_up\(self, tags"]),
    "SamplingParams(n, temperature, top_p, max_tokens, seed, logprobs)": (
        "vllm/sampling_params.py",
        [r"\bn: int", r"temperature: float", r"top_p: float", r"max_tokens: int", r"seed: int",
         r"logprobs: int"]),
    "Worker.reload_weights(*args, **kwargs)": (
        "vllm/v1/worker/gpu_worker.py", [r"def reload_weights\(self, \*args, \*\*kwargs\)"]),
    "reload_weights(weights_iterator, is_checkpoint_format)": (
        "vllm/v1/worker/gpu_model_runner.py",
        [r"weights_iterator: Iterable", r"is_checkpoint_format: bool"]),
    "current_platform.is_sleep_mode_available(), .is_cpu(), .device_name": (
        "vllm/platforms/interface.py",
        [r"def is_sleep_mode_available", r"def is_cpu", r"device_name: str"]),
    "LLM(enable_chunked_prefill, max_num_batched_tokens)": (
        "vllm/engine/arg_utils.py", [r"enable_chunked_prefill:", r"max_num_batched_tokens:"]),
    "CompletionOutput.token_ids, .logprobs": ("vllm/outputs.py", [r"token_ids:", r"logprobs:"]),
    "vllm.__version__": ("vllm/version.py", [r"__version__"]),
}
"""API -> (file in the wheel, patterns that must all occur in it)."""


def missing(wheel: str) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())

        def text(path: str) -> str:
            return z.read(path).decode() if path in names else ""

        return [api for api, (path, patterns) in CHECKS.items()
                if not all(re.search(p, text(path)) for p in patterns)]


if __name__ == "__main__":
    for wheel in sys.argv[1:]:
        print(f"{wheel.rsplit('/', 1)[-1]}: missing {missing(wheel) or 'none'}")
