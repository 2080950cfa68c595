"""Compare evaluated runs: one row per arm (reward, diversity weight), mean and 95% interval over
seeds, plus pass@k, quality-versus-distinct and training-curve plots."""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from darling.errors import ConfigError, MissingPathError
from darling.eval.config import HELDOUT
from darling.eval.plots import plot_pass_at_k, plot_quality_vs_distinct, plot_training_curves
from darling.eval.training_signal import partition_agreement, training_signal
from darling.partition.protocol import partition_rollouts

log = logging.getLogger(__name__)

TRAINING_CURVES = ("reward/quality_mean", "diversity/classes_per_group", "rollout/logp_mean")
CURVE_WINDOW = 5
"""Training curves are trailing means over this many steps."""


def _present(values: Sequence[float]) -> np.ndarray:
    """The values that are not NaN, as float64, in their order: shape ``(n,)``."""
    return np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """``(mean, half-width)`` of a Student-t interval; half-width NaN (undefined) for a single
    value: one seed says nothing about the seed-to-seed spread.

    >>> mean_interval([1.0, 2.0, 3.0])[0]
    2.0
    """
    from scipy import stats

    x = _present(values)
    if len(x) == 0:
        return float("nan"), float("nan")
    if len(x) == 1:
        return float(x[0]), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


ANALYSES = ("paired", "unpaired", "both")
"""How ``compare`` sets each arm against the baseline: paired by seed (Student-t on the per-seed
differences), unpaired (Welch interval and permutation p-value on the two arms' runs), or both."""
PERMUTATIONS = 9999
"""Random relabellings of the permutation test when exact enumeration would take more."""
TIE_TOLERANCE = 100 * np.finfo(np.float64).eps
"""Relative tolerance under which a relabelled difference counts as equal to the observed one
(sums in another order differ by rounding only; scipy's ``permutation_test`` uses the same)."""


def welch_interval(
    x: Sequence[float], y: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(mean(x) - mean(y), half-width, df)``: Welch's interval for the difference of two
    independent arms' means, with the Welch-Satterthwaite degrees of freedom.

    With sample variances ``s1², s2²`` of ``n1, n2`` runs, ``v_i = s_i² / n_i``:
    ``se = sqrt(v1 + v2)``, ``df = (v1 + v2)² / (v1² / (n1 - 1) + v2² / (n2 - 1))`` and the
    half-width is ``t_{(1 + confidence) / 2, df} * se`` (as ``scipy.stats.ttest_ind(x, y,
    equal_var=False).confidence_interval()``). NaNs are dropped. An arm with fewer than two runs
    has no variance, and two arms without any spread no df: the half-width and df are then NaN
    (undefined), never 0.

    >>> d, half, df = welch_interval([1.0, 2.0, 3.0], [0.0, 2.0, 4.0])
    >>> d, round(df, 3)   # v1 = 1/3, v2 = 4/3: df = (5/3)² / ((1/9 + 16/9) / 2) = 50/17
    (0.0, 2.941)
    """
    from scipy import stats

    a, b = np.sort(_present(x)), np.sort(_present(y))  # sorted: the same in any input order
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan"), float("nan")
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, float("nan"), float("nan")
    v1, v2 = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if v1 + v2 == 0:
        return diff, float("nan"), float("nan")
    df = (v1 + v2) ** 2 / (v1**2 / (len(a) - 1) + v2**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(v1 + v2)
    return diff, float(half), float(df)


def permutation_pvalue(
    x: Sequence[float], y: Sequence[float], n_resamples: int = PERMUTATIONS, seed: int = 0
) -> tuple[float, int, bool]:
    """``(p, relabellings, exact)``: two-sided permutation test of ``mean(x) - mean(y)``.

    Under the null hypothesis the arm labels are exchangeable: each of the ``C(n1 + n2, n1)``
    ways to label ``n1`` of the pooled runs ``x`` is equally likely. With ``T`` the relabelled
    difference and ``t`` the observed one, ``p = min(1, 2 min(P(T <= t), P(T >= t)))`` (scipy's
    two-sided convention). If ``C(n1 + n2, n1) <= n_resamples`` every labelling is enumerated
    and ``P`` is exact (the observed labelling is one of them); otherwise ``n_resamples`` random
    labellings are drawn with ``numpy.random.default_rng(seed)`` and ``P = (count + 1) /
    (n_resamples + 1)``, which never gives 0 (the observed labelling counts). Each arm is sorted
    first, so the same runs give the same p in whatever order they are passed. NaNs are dropped;
    an empty arm gives ``(nan, 0, True)``.

    >>> permutation_pvalue([3.0, 4.0], [1.0, 2.0])  # 6 labellings; t = 2 is the largest of them
    (0.3333333333333333, 6, True)
    """
    a, b = np.sort(_present(x)), np.sort(_present(y))  # sorted: the same in any input order
    n1, n = len(a), len(a) + len(b)
    if n1 == 0 or n1 == n:
        return float("nan"), 0, True
    pooled = np.concatenate([a, b])  # (n,)
    total = math.comb(n, n1)
    exact = total <= n_resamples
    if exact:
        labels = np.zeros((total, n), dtype=bool)  # (labellings, n): True = in x
        for row, chosen in enumerate(itertools.combinations(range(n), n1)):
            labels[row, list(chosen)] = True
    else:
        rng = np.random.default_rng(seed)
        order = rng.permuted(np.tile(np.arange(n), (n_resamples, 1)), axis=1)
        labels = order < n1  # (n_resamples, n): a random n1-subset per row
    sums = labels @ pooled  # (labellings,)
    null = sums / n1 - (pooled.sum() - sums) / (n - n1)
    observed = a.mean() - b.mean()
    gamma = abs(TIE_TOLERANCE * observed)
    extra = 0 if exact else 1
    less = (np.count_nonzero(null <= observed + gamma) + extra) / (len(null) + extra)
    greater = (np.count_nonzero(null >= observed - gamma) + extra) / (len(null) + extra)
    return float(min(1.0, 2 * min(less, greater))), len(null), exact


def find_metrics(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``metrics.json`` written by ``evaluate.py`` at or under ``paths``."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise MissingPathError(f"compare: {path} does not exist")
        found += [path] if path.is_file() else sorted(path.rglob("metrics.json"))
    found = [p for p in found if p.parent.name != "comparison"]
    if not found:
        raise MissingPathError(
            f"compare: no metrics.json under {list(map(str, paths))}; run evaluate.py on each "
            "run first"
        )
    return found


PROTOCOL_EVAL_KEYS = ("k", "ks", "max_prompts", "utility", "embedder")
"""``eval.*`` settings that change what an evaluation measures (``prompts_per_batch`` and
``out_dir`` do not)."""


def protocol_of(record: dict[str, Any]) -> dict[str, str]:
    """What an evaluation measured, setting -> value (as text): the prompts, the ``eval.*``
    settings of ``PROTOCOL_EVAL_KEYS`` and what ``evaluate.py`` records under ``protocol``
    (sampling, quality, classifier, system prompt)."""
    eval_cfg = record.get("eval", {})
    protocol = {"prompts": record.get("prompts", HELDOUT)}
    protocol.update({f"eval.{key}": eval_cfg.get(key) for key in PROTOCOL_EVAL_KEYS
                     if key in eval_cfg or key == "k"})
    protocol.update({f"rollout.{key}": value
                     for key, value in (record.get("sampling") or {}).items()})
    protocol.update(record.get("protocol", {}))
    return {key: json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
            for key, value in protocol.items()}


def check_same_protocol(records: list[dict[str, Any]], files: list[Path]) -> None:
    """Refuse to pool evaluations that measured different things (other prompts, k, number of
    prompts, sampling, quality or classifier): averaged together they would read as extra seeds
    of one arm, and their difference as an effect. The message names each differing setting.
    A setting that an older ``metrics.json`` does not record is compared only among the files
    that record it."""
    protocols = [protocol_of(r) for r in records]
    differing = []
    for key in dict.fromkeys(k for p in protocols for k in p):
        values: dict[str, list[str]] = defaultdict(list)
        for protocol, path in zip(protocols, files, strict=True):
            if key in protocol:
                values[protocol[key]].append(str(path.parent))
        if len(values) > 1:
            differing.append(f"{key} (" + "; ".join(
                f"{value}: {len(dirs)} evaluation(s), e.g. {dirs[0]}"
                for value, dirs in values.items()) + ")")
    if differing:
        raise ConfigError(
            "compare: these evaluations measured different things, so their numbers are not "
            f"comparable: they differ in {'; '.join(differing)}. Re-evaluate them with the same "
            "settings, or pass the metrics.json files or folders of one protocol only"
        )


def arm_of(run: dict[str, Any]) -> str:
    """The arm a run belongs to: ``base`` or ``<reward> w=<weight>``."""
    if run.get("source") == "base":
        return f"base {run.get('model', '')}".strip()
    return f"{run['reward']} w={run['diversity_weight']:g}"


def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """``arm -> metric -> (mean, half-width, seeds)`` over the records of each arm; ``seeds``
    counts the records that have the metric (a NaN or missing value is left out)."""
    by_arm: dict[str, list[dict[str, float]]] = defaultdict(list)
    for record in records:
        by_arm[arm_of(record["run"])].append(record["metrics"])
    table: dict[str, dict[str, tuple[float, float, int]]] = {}
    for arm, metrics in by_arm.items():
        keys = list(dict.fromkeys(k for m in metrics for k in m))
        values = {k: [m.get(k, float("nan")) for m in metrics] for k in keys}
        table[arm] = {k: (*mean_interval(v), _count(v))
                      for k, v in values.items()}
    return table


def paired_differences(
    records: list[dict[str, Any]], baseline: str
) -> dict[str, dict[str, tuple[float, float, int]]]:
    """``arm -> metric -> (mean, half-width, pairs)`` of ``metric(arm, seed) - metric(baseline,
    seed)`` over the seeds both arms have. Arms trained with the same seed share their prompt
    order and their first rollouts, so pairing by seed removes that part of the seed-to-seed
    spread; the interval is the Student-t interval of the differences. Runs of different studies
    (``run.study`` in metrics.json) are never paired, even with the same seed."""
    by_arm_seed = {(arm_of(r["run"]), (r["run"].get("study"), r["run"].get("seed"))): r["metrics"]
                   for r in records}
    base = {seed: m for (arm, seed), m in by_arm_seed.items() if arm == baseline}
    if not base:
        raise ConfigError(f"baseline={baseline!r} is not an arm here; arms: "
                         f"{sorted({arm for arm, _ in by_arm_seed})}")
    table: dict[str, dict[str, tuple[float, float, int]]] = {}
    for arm in dict.fromkeys(arm for arm, _ in by_arm_seed):
        pairs = [(m, base[seed]) for (a, seed), m in by_arm_seed.items()
                 if a == arm and seed in base and arm != baseline and not arm.startswith("base")]
        if pairs:
            keys = [k for k in pairs[0][0] if all(k in m and k in b for m, b in pairs)]
            table[f"{arm} − {baseline}"] = {
                k: (*mean_interval([m[k] - b[k] for m, b in pairs]), len(pairs)) for k in keys
            }
    return table


def unpaired_differences(
    records: list[dict[str, Any]], baseline: str, n_resamples: int = PERMUTATIONS, seed: int = 0
) -> dict[str, dict[str, tuple[float, float, float, float, int, int]]]:
    """``arm − baseline -> metric -> (difference, half-width, df, p, runs, baseline runs)``: each
    arm's runs against the baseline's as two independent samples, by ``welch_interval`` and
    ``permutation_pvalue``. Nothing is paired, so every run counts, whether or not the other arm
    has its seed. When the records come from more than one study (``run.study``), each study's
    difference is added as ``arm − baseline (study s)``, descriptively."""
    by_arm: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_arm[arm_of(record["run"])].append(record)
    if baseline not in by_arm:
        raise ValueError(f"baseline={baseline!r} is not an arm here; arms: {sorted(by_arm)}")
    studies = sorted({str(r["run"].get("study")) for r in records
                      if r["run"].get("source") != "base"})
    table: dict[str, dict[str, tuple[float, float, float, float, int, int]]] = {}
    for arm, runs in by_arm.items():
        if arm == baseline or arm.startswith("base"):
            continue
        subsets = [(f"{arm} − {baseline}", runs, by_arm[baseline])]
        if len(studies) > 1:
            subsets += [(f"{arm} − {baseline} (study {st})",
                         [r for r in runs if str(r["run"].get("study")) == st],
                         [r for r in by_arm[baseline] if str(r["run"].get("study")) == st])
                        for st in studies]
        for name, mine, theirs in subsets:
            keys = [k for k in dict.fromkeys(k for r in mine for k in r["metrics"])
                    if any(k in r["metrics"] for r in theirs)]
            row = {}
            for k in keys:
                x = [r["metrics"].get(k, float("nan")) for r in mine]
                y = [r["metrics"].get(k, float("nan")) for r in theirs]
                diff, half, df = welch_interval(x, y)
                p, _, _ = permutation_pvalue(x, y, n_resamples, seed)
                row[k] = (diff, half, df, p, _count(x), _count(y))
            if row:
                table[name] = row
    return table


def _count(values: Sequence[float]) -> int:
    """How many of ``values`` are not NaN (the runs that have the metric)."""
    return sum(not math.isnan(v) for v in values)


def compare(
    paths: Sequence[str | Path], out_dir: str | Path, baseline: str | None = None,
    analysis: str = "paired", n_resamples: int = PERMUTATIONS, seed: int = 0,
    collapsed_below: float | None = None, signal_partition: Any = None,
) -> dict[str, Any]:
    """Write ``comparison.csv``, ``comparison.md``, ``runs.csv`` (one row per evaluated run, with
    its study and seed) and the plots into ``out_dir``. With ``baseline``, also each arm's
    difference from it: ``analysis`` is ``paired`` (by seed), ``unpaired`` (Welch and
    permutation, ``unpaired_differences``; also ``unpaired.csv``) or ``both``. With
    ``collapsed_below``, each arm's share of runs whose distinct@k is below it
    (``collapsed_share``, reported, not tested). With ``signal_partition``, the training-signal
    table also judges every run's logged rollouts by that partition (``training_signals``)."""
    if analysis not in ANALYSES:
        raise ValueError(f"analysis={analysis!r}: choose one of {list(ANALYSES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = find_metrics(paths)
    records = [with_run_dir(json.loads(p.read_text()), p) for p in files]
    check_same_protocol(records, files)
    lost = [r["run"]["run_dir"] for r in records
            if r["run"].get("run_dir") and not Path(r["run"]["run_dir"]).is_dir()]
    if lost:
        log.warning("%d trained run folder(s) are not found from here, e.g. %s: the training "
                    "signal and training curves leave them out", len(lost), lost[0])
    described = (records if collapsed_below is None
                 else [with_collapse(r, collapsed_below) for r in records])  # reported, not tested
    table = summarize(described)
    write_runs(described, out_dir / "runs.csv")
    columns = ["collapsed_share", "quality_mean", "pass@1", "correct_distinct@k", "distinct@k",
               "distinct_4", "embedding_distance", "vendi", "response_words_mean"]
    columns += sorted({k for arm in table.values() for k in arm if k.startswith("pass@")} - {
        "pass@1"}, key=lambda k: int(k.split("@")[1]))
    columns = [c for c in columns if any(c in arm for arm in table.values())]
    with (out_dir / "comparison.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arm", "seeds", *[f"{c}{s}" for c in columns for s in ("", "_ci95")]])
        for arm, metrics in table.items():
            seeds = max(v[2] for v in metrics.values())
            writer.writerow([arm, seeds, *[x for c in columns for x in metrics.get(
                c, (float("nan"), float("nan"), 0))[:2]]])
    lines = _markdown_table(table, columns)
    diff_columns = [c for c in columns if c != "collapsed_share"]  # differences: records only
    paired = (paired_differences(records, baseline)
              if baseline and analysis in ("paired", "both") else {})
    if paired:
        lines += ["", f"Paired by seed, difference from {baseline}:", ""]
        lines += _markdown_table(paired, [c for c in diff_columns
                                          if c in next(iter(paired.values()))])
    unpaired = (unpaired_differences(records, baseline, n_resamples, seed)
                if baseline and analysis in ("unpaired", "both") else {})
    if unpaired:
        lines += ["", f"Unpaired, difference from {baseline}: difference ± 95% Welch half-width "
                  "[Welch-Satterthwaite df; two-sided permutation p]; runs are arm/baseline "
                  f"(permutations: exact if at most {n_resamples} labellings, else "
                  f"{n_resamples} random ones, seed {seed}):", ""]
        lines += _unpaired_table(unpaired, [c for c in diff_columns
                                            if c in next(iter(unpaired.values()))])
        write_unpaired(unpaired, out_dir / "unpaired.csv")
    signal = summarize(training_signals(records, signal_partition))
    if signal:
        lines += ["", "Training signal (rollout logs of the training prompts; "
                  "darling.eval.training_signal):", ""]
        lines += _markdown_table(signal, list(next(iter(signal.values()))))
    (out_dir / "comparison.md").write_text("\n".join(lines) + "\n")
    log.info("compared %d evaluations in %d arms:\n%s", len(records), len(table),
             "\n".join(lines))

    curves = {
        arm: {int(k.split("@")[1]): v[:2] for k, v in metrics.items() if k.startswith("pass@")}
        for arm, metrics in table.items()
    }
    if any(curves.values()):
        plot_pass_at_k({a: c for a, c in curves.items() if c}, out_dir / "pass_at_k.png")
    x_key = "correct_distinct@k" if any("correct_distinct@k" in m for m in table.values()) \
        else "distinct@k"
    points = [(arm, *m[x_key][:2], *m["quality_mean"][:2]) for arm, m in table.items()
              if x_key in m and "quality_mean" in m]
    if points:
        plot_quality_vs_distinct(points, out_dir / "quality_vs_distinct.png", x_label=x_key)
    curves_by_metric = training_curves(records)
    if curves_by_metric:
        plot_training_curves(curves_by_metric, out_dir / "training_curves.png",
                             f"{CURVE_WINDOW}-step trailing mean")
    log.info("comparison written to %s (comparison.md, comparison.csv, plots)", out_dir)
    return {"arms": table, "paired": paired, "unpaired": unpaired, "out_dir": str(out_dir),
            "runs": [record["run"] for record in records]}


def _markdown_table(table: dict[str, dict[str, tuple]], columns: list[str]) -> list[str]:
    lines = ["| arm | seeds | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for arm, metrics in table.items():
        seeds = max(v[2] for v in metrics.values())
        cells = [_cell(*metrics[c][:3]) + _fewer(metrics[c][2], seeds) if c in metrics else "-"
                 for c in columns]
        lines.append(f"| {arm} | {seeds} | " + " | ".join(cells) + " |")
    return lines


def _fewer(n: int, row_n: int) -> str:
    """A cell's own count of runs where it is below its row's (e.g. pooled records that lack
    the metric), so that no interval reads as over more runs than it has."""
    return f" ({n} runs)" if 1 < n < row_n else ""


def _cell(mean: float, half: float, n: int) -> str:
    """``mean ± half``; a single value has no interval and says so instead of ``± 0.000``."""
    if n == 0:
        return "-"
    if n == 1:
        return f"{mean:.3f} (1 run, no interval)"
    return f"{mean:.3f} ± undefined" if math.isnan(half) else f"{mean:.3f} ± {half:.3f}"


def _unpaired_table(table: dict[str, dict[str, tuple]], columns: list[str]) -> list[str]:
    lines = ["| arm | runs | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for arm, metrics in table.items():
        runs = max(v[4] for v in metrics.values()), max(v[5] for v in metrics.values())
        cells = []
        for c in columns:
            if c not in metrics:
                cells.append("-")
                continue
            diff, half, df, p, n, n_base = metrics[c]
            own = f"; {n}/{n_base} runs" if (n, n_base) != runs else ""
            interval = ("± undefined (an arm has one run or no spread)" if math.isnan(half)
                        else f"± {half:.3f} [df {df:.1f}; p {p:.3g}{own}]")
            cells.append(f"{diff:+.3f} {interval}")
        lines.append(f"| {arm} | {runs[0]}/{runs[1]} | " + " | ".join(cells) + " |")
    return lines


def with_run_dir(record: dict[str, Any], metrics_file: Path) -> dict[str, Any]:
    """``record`` with ``run.run_dir`` usable from wherever ``compare`` runs: as recorded when
    that folder exists (it is relative to where ``evaluate.py`` ran); otherwise the folder above
    the evaluation's, when it holds a run's ``config.yaml`` (evaluations are written to
    ``<run>/eval-*`` by default); otherwise as recorded."""
    run_dir = record["run"].get("run_dir")
    above = metrics_file.parent.parent
    if not run_dir or Path(run_dir).is_dir() or not (above / "config.yaml").is_file():
        return record
    return {**record, "run": {**record["run"], "run_dir": str(above)}}


def with_collapse(record: dict[str, Any], below: float) -> dict[str, Any]:
    """``record`` with ``collapsed_share`` 1.0 if its distinct@k is below ``below``, else 0.0
    (averaged over an arm's runs it is the share of collapsed runs); trained runs only."""
    distinct = record["metrics"].get("distinct@k")
    if record["run"].get("source") == "base" or distinct is None:
        return record
    return {**record, "metrics": {**record["metrics"],
                                  "collapsed_share": float(distinct < below)}}


def write_unpaired(table: dict[str, dict[str, tuple]], path: Path) -> None:
    """One row per (difference, metric) of ``unpaired_differences``, with the interval's ends."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["difference", "metric", "estimate", "low", "high", "df", "p",
                         "runs", "baseline_runs"])
        for name, metrics in table.items():
            for metric, (diff, half, df, p, runs, base_runs) in metrics.items():
                writer.writerow([name, metric, diff, diff - half, diff + half, df, p, runs,
                                 base_runs])


def write_runs(records: list[dict[str, Any]], path: Path) -> None:
    """One row per evaluated run: arm, study, seed, then every metric."""
    keys = list(dict.fromkeys(k for r in records for k in r["metrics"]))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arm", "study", "seed", *keys])
        for r in records:
            writer.writerow([arm_of(r["run"]), r["run"].get("study", ""), r["run"].get("seed", ""),
                             *[r["metrics"].get(k, "") for k in keys]])


def training_signals(
    records: list[dict[str, Any]], partition: Any = None
) -> list[dict[str, Any]]:
    """``training_signal`` of every trained run whose rollout log is on disk, as records that
    ``summarize`` groups by arm. With ``partition`` (a partition function, e.g. the shipped
    classifier) and answer-set training prompts, each run's logged rollouts are also partitioned
    by it, group by group, and checked against the answers (``signal/classifier_false_merge``,
    ``signal/classifier_false_split``): one partition judging every arm's rollouts, whatever
    partition each arm trained with."""
    out = []
    for record in records:
        run_dir = record["run"].get("run_dir")
        logs = sorted((Path(run_dir) / "rollouts").glob("rank*.jsonl")) if run_dir else []
        if not logs:
            continue
        rows = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
        prompts = _answer_prompts(Path(run_dir))
        answer_of = _answer_of(prompts) if prompts else None
        metrics = training_signal(rows, answer_of)
        if partition is not None and answer_of is not None:
            labels, _ = partition_rollouts(
                [r["response"] for r in rows], [f"{r['step']}/{r['group_id']}" for r in rows],
                [prompts[r["prompt_id"]] for r in rows], partition)
            agreement = partition_agreement(rows, answer_of, labels.tolist())
            metrics |= {f"signal/classifier_{k}": v for k, v in agreement.items()}
        out.append({"run": record["run"], "metrics": metrics})
    return out


def _answer_prompts(run_dir: Path) -> dict[str, Any] | None:
    """A run's training prompts by id, if they are all answer-set prompts; else None."""
    from omegaconf import OmegaConf

    from darling.tasks.prompts import builtin_path, load_prompts

    path = OmegaConf.load(run_dir / "config.yaml").data.train_path or builtin_path("train")
    prompts = {row.id: row for row in load_prompts(path)}
    return prompts if all(row.kind == "answers" for row in prompts.values()) else None


def _answer_of(prompts: dict[str, Any]) -> Callable[[dict], str | None]:
    """Rollout -> its canonical correct answer (None: not correct)."""
    from darling.tasks.answers import answer_in_set

    def answer_of(rollout: dict) -> str | None:
        row = prompts[rollout["prompt_id"]]
        return answer_in_set(rollout["response"], row.answers, row.alias_map)[1]

    return answer_of


def training_curves(
    records: list[dict[str, Any]], window: int = CURVE_WINDOW
) -> dict[str, dict[str, tuple]]:
    """Per-step mean and 95% interval over seeds of each arm's training metrics (metrics.csv).

    Each run's series is first smoothed with a trailing mean over ``window`` steps (2 prompts per
    step make single steps very noisy); the interval is then over the seeds' smoothed values.
    """
    per_arm: dict[str, list[dict[str, dict[int, float]]]] = defaultdict(list)
    for record in records:
        run_dir = record["run"].get("run_dir")
        if not run_dir or not (Path(run_dir) / "metrics.csv").is_file():
            continue
        with (Path(run_dir) / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        per_arm[arm_of(record["run"])].append({
            metric: _trailing_mean(
                {int(r["step"]): float(r[metric]) for r in rows if r.get(metric)}, window
            )
            for metric in TRAINING_CURVES
        })
    series: dict[str, dict[str, tuple]] = defaultdict(dict)
    for arm, runs in per_arm.items():
        for metric in TRAINING_CURVES:
            steps = sorted(set.intersection(*(set(r[metric]) for r in runs)))
            if not steps:
                continue
            stats = [mean_interval([r[metric][s] for r in runs]) for s in steps]
            series[metric][arm] = (steps, [m for m, _ in stats], [h for _, h in stats])
    return dict(series)


def _trailing_mean(values: dict[int, float], window: int) -> dict[int, float]:
    """``step -> mean of the values at the last `window` logged steps up to it``.

    >>> _trailing_mean({0: 1.0, 1: 3.0, 2: 5.0}, 2)
    {0: 1.0, 1: 2.0, 2: 4.0}
    """
    steps = sorted(values)
    return {
        s: float(np.mean([values[t] for t in steps[max(0, i - window + 1): i + 1]]))
        for i, s in enumerate(steps)
    }
