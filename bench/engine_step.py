"""One training step with each rollout engine, same settings: where the time goes.

Runs ``train.py`` once per engine (a ``rollout/`` config name) for ``--steps`` steps with the
same overrides, in a temporary run directory, and reads the per-phase times every step logs
(``time/generate``, ``time/quality``, ``time/partition``, ``time/update``, ``time/sync``).
The table gives the median over the steps after the first (the first includes each engine's
warm-up) and the whole process's wall time (start-up included):

    python bench/engine_step.py --engines hf,vllm_cpu --steps 4 --out bench/engine_step.json
    python bench/engine_step.py --engines hf,vllm_cpu --steps 2 model=tiny   # smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("generate", "quality", "partition", "update", "sync")


def run(engine: str, steps: int, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="darling-engine-step-") as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "train.py", f"rollout={engine}", f"trainer.max_steps={steps}",
             "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}", *overrides],
            cwd=ROOT, capture_output=True, text=True,
        )
        wall = time.perf_counter() - start
        if out.returncode:
            raise RuntimeError(f"rollout={engine} failed:\n{out.stderr[-3000:]}")
        with (run_dir / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
    later = rows[1:] or rows
    phases = {p: statistics.median(float(r[f"time/{p}"]) for r in later) for p in PHASES}
    return {
        "engine": engine,
        "steps": len(rows),
        "first_generate_s": float(rows[0]["time/generate"]),
        **{f"{p}_s": v for p, v in phases.items()},
        "step_s": sum(phases.values()),
        "tokens_per_step": statistics.median(float(r["rollout/tokens"]) for r in later),
        "wall_s": wall,
        "sampler_logp_diff_max": max(
            (float(r["rollout/sampler/logp_diff_max"]) for r in rows
             if r.get("rollout/sampler/logp_diff_max")), default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="hf,vllm_cpu", help="comma-separated rollout/ names")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args, overrides = parser.parse_known_args()
    results = [run(engine, args.steps, overrides) for engine in args.engines.split(",")]
    print(f"{'engine':10} {'generate':>9} {'update':>8} {'sync':>7} {'step s':>7} "
          f"{'1st gen':>8} {'wall s':>7} {'max |dlogp|':>12}")
    for r in results:
        gap = "-" if r["sampler_logp_diff_max"] is None else f"{r['sampler_logp_diff_max']:.1e}"
        print(f"{r['engine']:10} {r['generate_s']:9.2f} {r['update_s']:8.2f} {r['sync_s']:7.3f} "
              f"{r['step_s']:7.2f} {r['first_generate_s']:8.2f} {r['wall_s']:7.1f} {gap:>12}")
    if args.out:
        args.out.write_text(json.dumps({
            "device": platform.processor() or platform.machine(), "steps": args.steps,
            "overrides": overrides, "results": results,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
