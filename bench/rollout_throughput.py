"""Rollout throughput of each engine on the same policy, prompts and device, the engine's start
and vLLM's weight sync.

Each engine samples ``n_per_prompt`` responses to each of ``--prompts`` built-in training prompts
(chat-formatted, as in training), after one warm-up call; the table gives the engine's start
(``bind``: for vLLM, building the engine and the first weight sync), generated tokens per second
(median of ``--repeats``) and, for vLLM, the median time of ``sync()`` (the policy's weights,
LoRA folded in, reloaded into the engine after an optimiser step). Each engine runs in its own
process (a vLLM engine joins a process group and binds threads in the process that starts it).
An engine is a ``rollout/`` config name; ``+compiled`` turns vLLM's graph compilation on
(``rollout.enforce_eager=false``). Hydra overrides of the training config choose the model and
sampling:

    python bench/rollout_throughput.py --engines hf,vllm_cpu,vllm_cpu+compiled \
        --out bench/rollout_throughput.json                      # CPU, SmolLM2-135M
    python bench/rollout_throughput.py --device cuda --engines hf,vllm \
        model=qwen2_5_0_5b rollout.max_new_tokens=256 --out bench/rollout_throughput_gpu.json
    python bench/rollout_throughput.py --engines hf model=tiny --prompts 2    # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from darling.models import load_policy
from darling.models.loading import DTYPES
from darling.rollout.engines import build_engine
from darling.tasks.chat import chat_prompt
from darling.tasks.prompts import builtin_path, load_prompts
from darling.train.config import register_configs

CONF = Path(__file__).resolve().parents[1] / "conf"


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


COMPILED = "+compiled"
"""Engine-name suffix: vLLM with graph compilation (``rollout.enforce_eager=false``)."""


def measure(engine: str, overrides: list[str], args: argparse.Namespace) -> dict:
    config_name = engine.removesuffix(COMPILED)
    extra = ["rollout.enforce_eager=false"] if engine.endswith(COMPILED) else []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"rollout={config_name}", *overrides, *extra])
    policy, tokenizer = load_policy(cfg.model, seed=cfg.seed)
    policy.to(args.device, DTYPES[cfg.model.dtype])
    rows = load_prompts(builtin_path("train"))[: args.prompts]
    prompts = [chat_prompt(tokenizer, row.prompt, cfg.data.system_prompt) for row in rows]
    engine_ = build_engine(cfg.rollout)
    start = time.perf_counter()
    engine_.bind(policy, tokenizer)
    start_s = time.perf_counter() - start
    engine_.generate(prompts[:1], [0], seeds=[0])  # warm-up: kernels, CUDA graphs, caches

    seconds, tokens = [], []
    for repeat in range(args.repeats):
        _synchronize(args.device)
        start = time.perf_counter()
        rollouts = engine_.generate(prompts, list(range(len(prompts))),
                                   seeds=[repeat * 1000 + i for i in range(len(prompts))])
        _synchronize(args.device)
        seconds.append(time.perf_counter() - start)
        tokens.append(rollouts.num_tokens)
    syncs = []
    for _ in range(args.repeats if cfg.rollout.engine != "hf" else 0):
        _synchronize(args.device)
        start = time.perf_counter()
        engine_.sync()
        _synchronize(args.device)
        syncs.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    result = {
        "engine": engine,
        "model": cfg.model.name,
        "prompts": len(prompts),
        "n_per_prompt": cfg.rollout.n_per_prompt,
        "max_new_tokens": cfg.rollout.max_new_tokens,
        "tokens_median": statistics.median(tokens),
        "seconds_median": median,
        "tokens_per_s": statistics.median(tokens) / median,
        "start_s": start_s,
        "sync_s_median": statistics.median(syncs) if syncs else None,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30
        if args.device.startswith("cuda") else None,
    }
    engine_.close()
    return result


def measure_apart(engine: str, argv: list[str]) -> dict:
    """``measure`` in a fresh process; its result comes back as the last line of stdout."""
    out = subprocess.run([sys.executable, __file__, "--single", engine, *argv],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"engine {engine} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="hf", help="comma-separated: hf, vllm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    register_configs()
    if args.single:
        print(json.dumps(measure(args.single, overrides, args)))
        return

    argv = [a for a in sys.argv[1:] if not a.startswith("--out") and a != str(args.out)]
    results = [measure_apart(name, argv) for name in args.engines.split(",")]
    base = next((r["tokens_per_s"] for r in results if r["engine"] == "hf"), None)
    print(f"{'engine':20} {'start s':>8} {'tokens':>8} {'s':>8} {'tokens/s':>10} {'vs hf':>7} "
          f"{'sync s':>8}")
    for r in results:
        ratio = f"{r['tokens_per_s'] / base:.1f}x" if base else "-"
        sync = f"{r['sync_s_median']:.3f}" if r["sync_s_median"] is not None else "-"
        print(f"{r['engine']:20} {r['start_s']:8.2f} {r['tokens_median']:8.0f} "
              f"{r['seconds_median']:8.2f} {r['tokens_per_s']:10.1f} {ratio:>7} {sync:>8}")
    if args.out:
        device = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
            platform.processor() or platform.machine()
        args.out.write_text(json.dumps({
            "device": device, "torch": torch.__version__, "overrides": overrides,
            "results": results,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
