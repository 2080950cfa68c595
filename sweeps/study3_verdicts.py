"""The endpoint table of study 3 (docs/results.md), by the plan's rules, from the two comparisons
that ``sweeps/study3.sh`` writes (``unpaired.csv``: Welch's interval and the permutation p).

    python sweeps/study3_verdicts.py multirun/study3      # prints the table, writes verdicts.json

H1 (primary): correct_distinct@32 at temperature 1.0, supported if Welch's interval lies above 0
and p < 0.05, refuted if below 0 and p < 0.05, undecided otherwise. H2a / H2b: pass@1 at
temperature 1.0 / at 0.6 with top_p 0.95, non-inferior if Welch's lower end is above -0.05.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from darling.eval.verdicts import non_inferiority, superiority  # noqa: E402

DIFFERENCE = "darling_answer w=1 − grpo w=0"
MARGIN = -0.05
ENDPOINTS = (
    ("H1", "correct_distinct@32, temperature 1.0 (primary)", "comparison-t1.0",
     "correct_distinct@k", "superiority"),
    ("H2a", "pass@1, temperature 1.0 (non-inferiority, margin -0.05)", "comparison-t1.0",
     "pass@1", "non_inferiority"),
    ("H2b", "pass@1, temperature 0.6 / top_p 0.95 (non-inferiority, margin -0.05)",
     "comparison-t0.6", "pass@1", "non_inferiority"),
)


def endpoint_rows(study_dir: Path) -> list[dict]:
    """One row per endpoint: the pooled difference (every study's runs) with its interval, p,
    run counts and verdict."""
    rows = []
    for name, label, comparison, metric, rule in ENDPOINTS:
        path = study_dir / comparison / "unpaired.csv"
        if not path.is_file():
            raise SystemExit(f"error: {path} does not exist: run the comparisons first "
                             "(sweeps/study3.sh, or docs/results/study3/analyse.sh)")
        with path.open(newline="") as f:
            found = [r for r in csv.DictReader(f)
                     if r["difference"] == DIFFERENCE and r["metric"] == metric]
        if len(found) != 1:
            raise SystemExit(f"error: {path} has no row {DIFFERENCE!r}, {metric!r}")
        r = {k: float(found[0][k]) for k in ("estimate", "low", "high", "df", "p")}
        verdict = (superiority(r["low"], r["high"], r["p"]) if rule == "superiority"
                   else non_inferiority(r["low"], MARGIN))
        rows.append({"endpoint": name, "label": label, **r, "runs": int(found[0]["runs"]),
                     "baseline_runs": int(found[0]["baseline_runs"]), "verdict": verdict})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| endpoint | darling_answer − grpo | Welch 95% interval [df] | permutation p | "
             "runs | verdict by the plan's rule |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['endpoint']}: {r['label']} | {r['estimate']:+.3f} | "
                     f"[{r['low']:+.3f}, {r['high']:+.3f}] [{r['df']:.1f}] | {r['p']:.3g} | "
                     f"{r['runs']}/{r['baseline_runs']} | **{r['verdict']}** |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path, nargs="?", default=Path("multirun/study3"))
    args = parser.parse_args()
    rows = endpoint_rows(args.study_dir)
    print(markdown(rows))
    (args.study_dir / "verdicts.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
