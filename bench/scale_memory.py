"""Peak host memory per rank while loading the policy and while writing the final policy, on CPU
ranks over gloo, for three ways of loading, beside the memory plan's estimate.

The model (``--source``, Qwen2.5-0.5B's shape built in code by default) is first saved the way
the hub holds a model: ``--dtype`` safetensors in files of at most 0.3 GB with an index. Each
variant then runs in its own process tree: ``--ranks`` processes (``torch.multiprocessing``, gloo
on 127.0.0.1) each do what ``train`` does for that phase, with the same functions:

- ``before``: the code of ``--before-ref`` (the commit before meta-device loading): every rank
  loads the whole checkpoint (``load_policy``), then ``shard_model``; its ``SavePolicy`` gathers
  every weight and writes one float32 file;
- ``rank0``: ``load_policy(on_meta=True)``, ``shard_model``, rank 0's ``load_policy_weights`` and
  ``fill_shards`` (how weights built in code, or named by a hub id, are loaded);
- ``files``: ``load_policy(on_meta=True)``, ``shard_model``, ``fill_shards_from_files`` (each rank
  reads its own rows: how a checkpoint directory is loaded);

the last two save with this tree's ``SavePolicy`` (``--max-shard-gb`` shards in ``--save-dtype``).

Peak resident memory is the kernel's high-water mark (``VmHWM``), reset at the start of each phase
through ``/proc/self/clear_refs``; ``baseline`` is the resident memory at that moment (imports,
process group, and before the save the rank's shards). ``MALLOC_MMAP_THRESHOLD_`` is set so that
freed tensors go back to the system in every variant. One full float32 copy of the model is
``4 x parameters`` bytes; the table gives each peak above its baseline as a share of it.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/scale_memory.py \\
        --out bench/scale_memory.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("before", "rank0", "files")
BEFORE_REF = "d9e4683352295fb660f4037d4df300b74e1884a7"
"""The last commit whose ranks each loaded the whole model and whose save gathered it whole."""
MMAP_THRESHOLD = 1 << 20
"""Allocations from 1 MiB up are mmap'd and returned to the system when freed (glibc otherwise
raises its threshold to 32 MiB and keeps freed tensors in the heap, hiding what is live)."""


def _rss() -> tuple[int, int]:
    """(current, peak) resident bytes of this process."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def _reset_peak() -> int:
    Path("/proc/self/clear_refs").write_text("5")
    return _rss()[0]


class _Trainer:
    """What ``SavePolicy.on_train_end`` reads from Lightning's trainer."""

    def __init__(self, rank: int):
        import torch.distributed as dist

        self.is_global_zero = rank == 0
        self.strategy = type("Strategy", (), {"barrier": staticmethod(dist.barrier)})()


def _worker(rank: int, world: int, port: int, args: argparse.Namespace) -> None:
    import torch.distributed as dist
    from omegaconf import OmegaConf
    from torch.distributed.device_mesh import init_device_mesh

    from darling.train.config import TrainConfig

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    cfg = OmegaConf.structured(TrainConfig)
    spec = cfg.model
    spec.source, spec.path, spec.name, spec.dtype = "pretrained", args.checkpoint, "bench", \
        args.dtype
    import darling.train.strategies as strategies
    from darling.train.callbacks import SavePolicy

    sharding = strategies.ShardingSpec(param_dtype=None)
    result = {"rank": rank}
    dist.barrier()
    result["load_baseline"] = _reset_peak()
    start = time.perf_counter()
    from darling.models.loading import load_policy

    if args.variant == "before":
        policy, tokenizer = load_policy(spec, seed=0)
        strategies.shard_model(policy, mesh, sharding)
        save = SavePolicy(args.policy_dir)
    else:
        policy, tokenizer = load_policy(spec, seed=0, on_meta=True)
        strategies.shard_model(policy, mesh, sharding)
        if args.variant == "files":
            strategies.fill_shards_from_files([policy], spec.path)
        else:
            from darling.models.loading import transformers_model
            from darling.train.policy import load_policy_weights

            source = {}
            if rank == 0:
                full = load_policy_weights(spec, 0)
                source = transformers_model(full).state_dict()
                del full
            strategies.fill_shards([policy], source)
        save = SavePolicy(args.policy_dir, dtype=args.save_dtype or args.dtype,
                          max_shard_gb=args.max_shard_gb)
    dist.barrier()
    result["load_peak"] = _rss()[1]
    result["load_seconds"] = time.perf_counter() - start
    result["params"] = sum(p.numel() for p in policy.parameters())
    result["save_baseline"] = _reset_peak()
    start = time.perf_counter()
    module = type("Module", (), {"policy": policy, "tokenizer": tokenizer})()
    save.on_train_end(_Trainer(rank), module)
    result["save_peak"] = _rss()[1]
    result["save_seconds"] = time.perf_counter() - start
    Path(args.result_dir, f"rank{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _source_tree(ref: str, into: Path) -> str:
    """Extract ``src/`` of git ``ref`` into ``into``; returns the commit."""
    commit = subprocess.check_output(["git", "rev-parse", ref], cwd=ROOT, text=True).strip()
    archive = into / "src.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return commit


def run_variant(variant: str, args: argparse.Namespace, work: Path) -> list[dict]:
    """Run ``variant`` in a fresh process tree; returns one result per rank."""
    result_dir = work / f"{variant}-results"
    result_dir.mkdir()
    src = ROOT / "src"
    if variant == "before":
        src = work / "before" / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)]),
           "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    command = [sys.executable, __file__, "--worker", variant, "--result-dir", str(result_dir),
               "--policy-dir", str(work / f"{variant}-policy"), "--dtype", args.dtype,
               "--ranks", str(args.ranks), "--max-shard-gb", str(args.max_shard_gb),
               "--checkpoint", str(work / "checkpoint")]
    if args.save_dtype:
        command += ["--save-dtype", args.save_dtype]
    subprocess.run(command, env=env, check=True)
    files = sorted((work / f"{variant}-policy").glob("*.safetensors"))
    results = [json.loads(p.read_text()) for p in sorted(result_dir.glob("rank*.json"))]
    for r in results:
        r["policy_files"] = len(files)
        r["largest_file"] = max(p.stat().st_size for p in files)
    return results


def save_checkpoint(args: argparse.Namespace, directory: Path) -> None:
    """``--source`` built in code, saved as the hub holds a model: ``--dtype`` safetensors in
    files of at most 0.3 GB with an index, beside its tokenizer."""
    from omegaconf import OmegaConf

    from darling.models.loading import load_policy
    from darling.train.config import TrainConfig

    spec = OmegaConf.structured(TrainConfig).model
    spec.source, spec.dtype = args.source, args.dtype
    model, tokenizer = load_policy(spec, seed=0)
    model.save_pretrained(directory, max_shard_size="300MB")
    tokenizer.save_pretrained(directory)


def plan_estimate(args: argparse.Namespace, params_dtype_bytes: int) -> dict:
    """The memory plan's load phase (each way) and save phase for this shape and settings."""
    from omegaconf import OmegaConf

    from darling.memory_plan import PlanSettings, memory_plan
    from darling.models.loading import load_policy
    from darling.train.config import TrainConfig
    from darling.train.plan import model_shape

    spec = OmegaConf.structured(TrainConfig).model
    spec.source, spec.dtype = args.source, args.dtype
    shape = model_shape(load_policy(spec, on_meta=True)[0])
    settings = PlanSettings(
        ranks=args.ranks, load_bytes=params_dtype_bytes, compute_bytes=4,
        max_shard_bytes=int(args.max_shard_gb * 1e9),
        save_bytes=4 if args.save_dtype == "float32" else params_dtype_bytes)
    files = memory_plan(shape, dataclasses.replace(settings, read_files=True))
    rank0 = memory_plan(shape, settings)
    state = 4 * shape.params // args.ranks
    save = rank0.phases["save"]
    return {
        "load_files_any_rank": files.peak("load"),
        "load_rank0_rank0": rank0.peak("load"),
        "load_rank0_other": state + shape.largest_unit * params_dtype_bytes,
        "save_rank0_above_state": save["one shard of the policy"],
        "params": shape.params,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=VARIANTS)
    parser.add_argument("--checkpoint")
    parser.add_argument("--result-dir")
    parser.add_argument("--policy-dir")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--source", default="qwen2_5_0_5b_shape",
                        help="model.source (tiny: a quick check of the script)")
    parser.add_argument("--dtype", default="bfloat16",
                        help="model.dtype (the qwen2_5_0_5b_shape config's is bfloat16)")
    parser.add_argument("--save-dtype", default=None,
                        help="save.dtype of the rank0 and files variants")
    parser.add_argument("--max-shard-gb", type=float, default=0.3)
    parser.add_argument("--before-ref", default=BEFORE_REF)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.worker:
        import torch.multiprocessing as mp

        args.variant = args.worker
        mp.spawn(_worker, args=(args.ranks, _free_port(), args), nprocs=args.ranks)
        return
    import torch

    bytes_per = torch.empty(0, dtype=getattr(torch, args.dtype)).element_size()
    with tempfile.TemporaryDirectory(prefix="scale-memory-") as tmp:
        work = Path(tmp)
        (work / "before").mkdir()
        before_commit = _source_tree(args.before_ref, work / "before")
        save_checkpoint(args, work / "checkpoint")
        runs = {v: run_variant(v, args, work) for v in args.variants.split(",")}
    plan = plan_estimate(args, bytes_per)
    full_copy = 4 * plan["params"]
    rows = []
    for variant, results in runs.items():
        for r in results:
            rows.append({
                "variant": variant, "rank": r["rank"],
                "load_baseline_gb": r["load_baseline"] / 1e9,
                "load_peak_gb": r["load_peak"] / 1e9,
                "load_above_baseline_x_fp32": (r["load_peak"] - r["load_baseline"]) / full_copy,
                "save_baseline_gb": r["save_baseline"] / 1e9,
                "save_peak_gb": r["save_peak"] / 1e9,
                "save_above_baseline_gb": (r["save_peak"] - r["save_baseline"]) / 1e9,
                "policy_files": r["policy_files"], "largest_file_gb": r["largest_file"] / 1e9,
                "load_seconds": r["load_seconds"], "save_seconds": r["save_seconds"],
            })
    report = {
        "command": " ".join(["python", "bench/scale_memory.py", *sys.argv[1:]]),
        "before_commit": before_commit,
        "commit": subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=ROOT,
                                                text=True).strip(),
        "model": args.source, "dtype": args.dtype, "ranks": args.ranks,
        "max_shard_gb": args.max_shard_gb, "save_dtype": args.save_dtype or args.dtype,
        "params": plan["params"], "full_fp32_copy_gb": full_copy / 1e9,
        "plan_gb": {k: v / 1e9 for k, v in plan.items() if k != "params"},
        "rows": rows,
    }
    header = ("variant", "rank", "load_baseline_gb", "load_peak_gb", "load_above_baseline_x_fp32",
              "save_baseline_gb", "save_peak_gb", "save_above_baseline_gb", "policy_files")
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(f"{row[k]:.2f}" if isinstance(row[k], float) else str(row[k])
                         for k in header))
    print("plan (GB):", json.dumps(report["plan_gb"]))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
