"""Rollout throughput of each engine on the same policy, prompts and device, and vLLM's weight sync.

Each engine samples ``n_per_prompt`` responses to each of ``--prompts`` built-in training prompts
(chat-formatted, as in training), after one warm-up call; the table gives generated tokens per
second (median of ``--repeats``) and, for vLLM, the median time of ``sync()`` (the policy's
weights, LoRA folded in, loaded into the engine after an optimiser step). Hydra overrides of the
training config choose the model and sampling:

    python bench/rollout_throughput.py --device cuda --engines hf,vllm \
        model=qwen2_5_0_5b rollout.max_new_tokens=256 --out bench/rollout_throughput.json
    python bench/rollout_throughput.py --engines hf model=tiny --prompts 2    # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from darling.models import load_policy
from darling.models.loading import DTYPES
from darling.tasks.prompts import builtin_path, load_prompts
from darling.train.config import register_configs
from darling.train.data import chat_prompt
from darling.train.run import build_engine

CONF = Path(__file__).resolve().parents[1] / "conf"


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(engine_name: str, overrides: list[str], args: argparse.Namespace) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"rollout={engine_name}", *overrides])
    policy, tokenizer = load_policy(cfg.model, seed=cfg.seed)
    policy.to(args.device, DTYPES[cfg.model.dtype])
    rows = load_prompts(builtin_path("train"))[: args.prompts]
    prompts = [chat_prompt(tokenizer, row.prompt, cfg.data.system_prompt) for row in rows]
    engine = build_engine(cfg)
    engine.bind(policy, tokenizer)
    engine.generate(prompts[:1], [0], seeds=[0])  # warm-up: kernels, CUDA graphs, caches

    seconds, tokens = [], []
    for repeat in range(args.repeats):
        _synchronize(args.device)
        start = time.perf_counter()
        rollouts = engine.generate(prompts, list(range(len(prompts))),
                                   seeds=[repeat * 1000 + i for i in range(len(prompts))])
        _synchronize(args.device)
        seconds.append(time.perf_counter() - start)
        tokens.append(rollouts.num_tokens)
    syncs = []
    for _ in range(args.repeats if engine_name != "hf" else 0):
        _synchronize(args.device)
        start = time.perf_counter()
        engine.sync()
        _synchronize(args.device)
        syncs.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    result = {
        "engine": engine_name,
        "model": cfg.model.name,
        "prompts": len(prompts),
        "n_per_prompt": cfg.rollout.n_per_prompt,
        "max_new_tokens": cfg.rollout.max_new_tokens,
        "tokens_median": statistics.median(tokens),
        "seconds_median": median,
        "tokens_per_s": statistics.median(tokens) / median,
        "sync_s_median": statistics.median(syncs) if syncs else None,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30
        if args.device.startswith("cuda") else None,
    }
    del engine, policy
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="hf", help="comma-separated: hf, vllm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args, overrides = parser.parse_known_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    register_configs()

    results = [measure(name, overrides, args) for name in args.engines.split(",")]
    base = next((r["tokens_per_s"] for r in results if r["engine"] == "hf"), None)
    print(f"{'engine':8} {'tokens':>8} {'s':>8} {'tokens/s':>10} {'vs hf':>7} {'sync s':>8}")
    for r in results:
        ratio = f"{r['tokens_per_s'] / base:.1f}x" if base else "-"
        sync = f"{r['sync_s_median']:.3f}" if r["sync_s_median"] is not None else "-"
        print(f"{r['engine']:8} {r['tokens_median']:8.0f} {r['seconds_median']:8.2f} "
              f"{r['tokens_per_s']:10.1f} {ratio:>7} {sync:>8}")
    if args.out:
        device = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
            platform.processor() or platform.machine()
        args.out.write_text(json.dumps({
            "device": device, "torch": torch.__version__, "overrides": overrides,
            "results": results,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
