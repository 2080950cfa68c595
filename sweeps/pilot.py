"""The pilot of study 2 (docs/results.md): which regime makes GRPO's classes per group fall?

Trains ``reward=grpo`` on the built-in *training* prompts for each candidate (n, lr), seed 100
(not a study seed), resumably (``ckpt_path=auto``), then reads every run's rollout log and counts
the answer-keyed classes of each group: rollouts giving the same canonical answer
(``AnswerSetPartition``: the accepted answer for a correct rollout, the normalised final answer
otherwise) are one class. It reports the mean over the first and the last 10 steps, the relative
fall, the step time, and the candidate the pre-registered rule picks. Held-out prompts are never
read.

    python sweeps/pilot.py                      # about 45 minutes on 2 free cores
    python sweeps/pilot.py --steps 2 model=tiny  # a smoke run of the pipeline
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = ((8, 2e-4), (8, 5e-4), (16, 2e-4), (16, 5e-4))
"""(n_per_prompt, lr) in the rule's order of preference: cheaper n first, then the lower lr."""
WINDOW = 10
FALL_TARGET = 1 / 3


def run_name(n: int, lr: float) -> str:
    return f"pilot-n{n}-lr{lr:g}"


def train(out: Path, n: int, lr: float, steps: int, extra: list[str]) -> Path:
    run_dir = out / run_name(n, lr)
    cmd = [sys.executable, "train.py", "reward=grpo", "seed=100", f"rollout.n_per_prompt={n}",
           f"optim.lr={lr}", f"trainer.max_steps={steps}", "ckpt_path=auto",
           "trainer.enable_progress_bar=false", f"run_name={run_name(n, lr)}",
           f"hydra.run.dir={run_dir}", *extra]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return run_dir


def classes_per_step(run_dir: Path) -> dict[int, float]:
    """Step -> mean number of answer-keyed classes per group of that step."""
    from darling.partition.keyed import AnswerSetPartition
    from darling.tasks.prompts import builtin_path, load_prompts

    rows = {r.id: r for r in load_prompts(builtin_path("train"))}
    groups: dict[tuple[int, int], list[tuple[str, str]]] = defaultdict(list)
    for path in sorted((run_dir / "rollouts").glob("rank*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            groups[(r["step"], r["group_id"])].append((r["response"], r["prompt_id"]))
    keyer, per_step = AnswerSetPartition(), defaultdict(list)
    for (step, _), members in groups.items():
        keys = keyer.class_keys([t for t, _ in members], [rows[p] for _, p in members])
        per_step[step].append(len(set(keys)))
    return {step: statistics.mean(v) for step, v in sorted(per_step.items())}


def summarise(run_dir: Path, n: int, lr: float) -> dict:
    per_step = classes_per_step(run_dir)
    steps = sorted(per_step)
    first = statistics.mean(per_step[s] for s in steps[:WINDOW])
    last = statistics.mean(per_step[s] for s in steps[-WINDOW:])
    with (run_dir / "metrics.csv").open() as f:
        metrics = [r for r in csv.DictReader(f) if r.get("time/generate")]
    timed = metrics[1:] or metrics  # the first step warms caches
    step_s = statistics.median(
        sum(float(r[k]) for k in r if k.startswith("time/") and r[k]) for r in timed
    )
    quality = [float(r["reward/quality_mean"]) for r in metrics]
    return {"n": n, "lr": lr, "steps": len(steps), "classes_first": first, "classes_last": last,
            "fall": 1 - last / first, "step_s": step_s,
            "quality_first": statistics.mean(quality[:WINDOW]),
            "quality_last": statistics.mean(quality[-WINDOW:]),
            "fall_after_step_40": _fall_after(per_step, 40, first)}


def _fall_after(per_step: dict[int, float], step: int, first: float) -> bool:
    """Whether the classes first fell by the target only after ``step`` (10-step window)."""
    steps = sorted(per_step)
    for end in range(WINDOW, len(steps) + 1):
        window = statistics.mean(per_step[s] for s in steps[end - WINDOW:end])
        if 1 - window / first >= FALL_TARGET:
            return steps[end - 1] > step
    return False


def choose(results: list[dict]) -> tuple[dict, bool]:
    """The pre-registered rule: the first candidate (in ``CANDIDATES`` order) whose classes fall
    by at least a third; else the largest fall, with the criterion marked as not met."""
    for r in results:
        if r["fall"] >= FALL_TARGET:
            return r, True
    return max(results, key=lambda r: r["fall"]), False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "multirun" / "pilot")
    args, extra = parser.parse_known_args()
    results = []
    for n, lr in CANDIDATES:
        results.append(summarise(train(args.out, n, lr, args.steps, extra), n, lr))
    chosen, met = choose(results)
    print("| n | lr | classes, first 10 steps | last 10 steps | fall | quality first -> last "
          "| step (s) |\n|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['n']} | {r['lr']:g} | {r['classes_first']:.2f} | {r['classes_last']:.2f} | "
              f"{r['fall']:.0%} | {r['quality_first']:.2f} -> {r['quality_last']:.2f} | "
              f"{r['step_s']:.1f} |")
    steps = 80 if met and chosen["fall_after_step_40"] else 60
    print(f"\nchosen: n={chosen['n']} lr={chosen['lr']:g}, {steps} steps "
          f"({'criterion met' if met else 'criterion NOT met: largest fall taken'})")
    (args.out / "pilot.json").write_text(json.dumps(
        {"results": results, "chosen": chosen, "criterion_met": met, "study_steps": steps},
        indent=2) + "\n")


if __name__ == "__main__":
    main()
