"""The sweep configs compose into the sweeps the README promises."""

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT


def _composed(name, part, *overrides):
    """The ``--cfg <part>`` (``hydra`` or ``job``) config that ``train.py`` composes for the
    sweep ``name``, parsed (interpolations left as written)."""
    out = subprocess.run(
        [sys.executable, "train.py", "--config-dir", "sweeps", "--config-name", name,
         "--cfg", part, *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return OmegaConf.create(out.stdout)


def _sweep(name, *overrides):
    """The swept parameters of a sweep config: override key -> its values, as Hydra reads
    them (``a,b,c`` or a sweep function such as ``range(6,20)``)."""
    return dict(_composed(name, "hydra", *overrides).hydra.sweeper.params)


def test_diversity_weight_sweep():
    sweep = _sweep("diversity_weight")
    assert sweep == {"reward.diversity_weight": "0,0.25,0.5,0.75,1", "seed": "0,1,2"}


def test_experiment_sweep_differs_only_in_the_reward():
    sweep = _sweep("experiment")
    assert sweep == {"reward": "grpo,darling,ngram,additive,grpo_std,darling_answer",
                     "seed": "0,1,2"}


def test_slurm_sweep_uses_submitit():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    hydra = _composed("slurm", "hydra", "hydra.launcher.partition=gpu").hydra
    assert hydra.launcher._target_.endswith(".SlurmLauncher")
    assert (hydra.launcher.partition, hydra.launcher.gpus_per_node,
            hydra.launcher.tasks_per_node) == ("gpu", 8, 8)
    assert hydra.sweeper.params["reward.diversity_weight"] == "0,0.25,0.5,0.75,1"


def test_run_experiment_trains_evaluates_compares_and_continues(tmp_path):
    env = {**os.environ, "EXPERIMENT_DIR": str(tmp_path), "EVAL_K": "4", "PYTHON": sys.executable}
    args = ["hydra.sweeper.params.reward='grpo,darling'", "hydra.sweeper.params.seed='0,1'",
            "model=tiny", "classifier=answer", "rollout.max_new_tokens=4",
            "rollout.n_per_prompt=4", "trainer.max_steps=1", "trainer.enable_progress_bar=false",
            "eval.max_prompts=2", "eval.embedder=null"]

    def run():
        out = subprocess.run(["bash", "sweeps/run_experiment.sh", *args], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]

    run()
    table = (tmp_path / "comparison" / "comparison.md").read_text()
    assert "| darling w=1 − grpo w=0 | 2 |" in table and "Training signal" in table
    evaluated = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/eval-k4/metrics.json")}
    assert len(evaluated) == 4 and (tmp_path / "base" / "metrics.json").is_file()

    run()  # the same command again: runs end at once, evaluations are not redone
    assert evaluated == {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/eval-k4/metrics.json")}


def test_pilot_rule_takes_the_first_candidate_that_falls_by_a_third():
    sys.path.insert(0, str(ROOT / "sweeps"))
    try:
        from pilot import choose
    finally:
        sys.path.pop(0)
    results = [{"n": 8, "fall": 0.2}, {"n": 8, "fall": 0.4}, {"n": 16, "fall": 0.6}]
    assert choose(results) == (results[1], True)  # cheapest that meets 1/3, not the largest
    assert choose([{"fall": 0.1}, {"fall": 0.3}]) == ({"fall": 0.3}, False)  # none: largest fall


def test_study2_sweep_is_the_preregistered_design():
    assert _sweep("study2") == {"reward": "grpo,darling,darling_answer", "seed": "0,1,2,3,4,5"}
    job = _composed("study2", "job")
    assert (job.rollout.n_per_prompt, job.optim.lr, job.trainer.max_steps) == (8, 0.0005, 80)


def test_study3_sweep_is_study2s_regime_with_new_seeds():
    assert _sweep("study3") == {"seed": "range(6,20)", "reward": "grpo,darling_answer"}
    jobs = [OmegaConf.to_container(_composed(name, "job", "reward=darling_answer", "seed=7"))
            for name in ("study2", "study3")]
    assert jobs[0] == jobs[1]  # the same job config, seed for seed: study 2's regime unchanged


def test_study2_per_seed_records_are_the_results_table():
    """docs/results/study2/per_seed holds study 2's grpo and darling_answer seeds as the
    per-seed table of docs/results.md prints them (pooled into study 3 as study 2)."""
    import json

    text = (ROOT / "docs" / "results.md").read_text()
    for reward in ("grpo", "darling_answer"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {reward} | .5"))
        cells = [c.strip() for c in row.strip("|").split("|")[1:]]
        for seed, cell in enumerate(cells):
            expected = [float(v) for v in cell.split(" / ")]
            record = json.loads((ROOT / "docs" / "results" / "study2" / "per_seed" /
                                 f"{reward}-seed{seed}" / "metrics.json").read_text())
            got = record["metrics"]
            assert [got["pass@1"], got["correct_distinct@k"], got["distinct@k"]] == expected
            assert (record["run"]["seed"], record["run"]["study"], record["eval"]["k"]) == (
                seed, "2", 32)
            assert record["sampling"]["temperature"] == 1.0


def test_study3_reported_verdicts_follow_from_the_committed_per_run_metrics():
    """docs/results/study3/verdicts.json (the endpoint table of docs/results.md) is what the
    plan's rules give on the committed metrics.json of every run: Welch's interval recomputed
    here from per_run/ (and study 2's pooled records at temperature 1.0), then the verdict."""
    from darling.eval.compare import welch_interval
    from darling.eval.verdicts import non_inferiority, superiority

    study3 = ROOT / "docs" / "results" / "study3"

    def values(temperature, metric, reward):
        files = sorted(study3.glob(f"per_run/smollm2_135m-{reward}-*/eval-k32-t{temperature}/"
                                   "metrics.json"))
        if temperature == "1.0":
            files += sorted((ROOT / "docs/results/study2/per_seed").glob(f"{reward}-seed*/"
                                                                       "metrics.json"))
        records = [json.loads(f.read_text()) for f in files]
        assert all(r["sampling"]["temperature"] == float(temperature) for r in records)
        return [r["metrics"][metric] for r in records]

    reported = {v["endpoint"]: v for v in json.loads((study3 / "verdicts.json").read_text())}
    for endpoint, temperature, metric, runs in (("H1", "1.0", "correct_distinct@k", 20),
                                                ("H2a", "1.0", "pass@1", 20),
                                                ("H2b", "0.6", "pass@1", 14)):
        x, y = values(temperature, metric, "darling_answer"), values(temperature, metric, "grpo")
        assert len(x) == len(y) == runs
        diff, half, _ = welch_interval(x, y)
        v = reported[endpoint]
        assert (v["estimate"], v["low"], v["high"]) == pytest.approx((diff, diff - half,
                                                                      diff + half))
        rule = (superiority(v["low"], v["high"], v["p"]) if endpoint == "H1"
                else non_inferiority(v["low"], -0.05))
        assert v["verdict"] == rule
    assert [reported[e]["verdict"] for e in ("H1", "H2a", "H2b")] == [
        "undecided", "not met", "not met"]


def test_study3_runner_evaluates_at_both_temperatures_pools_and_continues(tmp_path):
    """sweeps/study3.sh on the tiny model: one seed per arm, k = 4, a stand-in for study 2's
    records pooled at temperature 1.0; the same command again redoes nothing."""
    pool = tmp_path / "study2"
    for reward, weight, values in (("grpo", 0.0, (0.2, 0.3)), ("darling_answer", 1.0, (0.4, 0.1))):
        for seed, value in enumerate(values):
            folder = pool / f"{reward}-{seed}"
            folder.mkdir(parents=True)
            (folder / "metrics.json").write_text(json.dumps({
                "run": {"reward": reward, "diversity_weight": weight, "seed": seed, "study": "2"},
                "eval": {"k": 4}, "prompts": "builtin:heldout",
                "sampling": {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 4},
                "metrics": {"pass@1": value, "correct_distinct@k": 10 * value,
                            "distinct@k": 40 * value}}))
    out_dir = tmp_path / "study3"
    env = {**os.environ, "EXPERIMENT_DIR": str(out_dir), "EVAL_K": "4", "PYTHON": sys.executable,
           "POOL": f"t1.0={pool}"}
    args = ["hydra.sweeper.params.seed='6'", "model=tiny", "classifier=answer",
            "rollout.max_new_tokens=4", "rollout.n_per_prompt=4", "trainer.max_steps=1",
            "trainer.enable_progress_bar=false", "eval.max_prompts=2", "eval.embedder=null"]

    def run():
        out = subprocess.run(["bash", "sweeps/study3.sh", *args], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]

    run()
    evaluated = {p: p.stat().st_mtime_ns for p in out_dir.glob("*/eval-k4-t*/metrics.json")}
    assert len(evaluated) == 4  # two runs x two temperatures
    for path in evaluated:
        record = json.loads(path.read_text())
        hot = path.parent.name.endswith("t1.0")
        assert record["sampling"]["temperature"] == (1.0 if hot else 0.6)
        assert record["sampling"]["top_p"] == (1.0 if hot else 0.95)
        assert record["run"]["study"] == "3" and record["run"]["seed"] == 6
    hot = (out_dir / "comparison-t1.0" / "comparison.md").read_text()
    assert "| darling_answer w=1 − grpo w=0 | 3/3 |" in hot  # 1 + 2 pooled runs per arm
    assert "(study 2) | 2/2 |" in hot and "(study 3) | 1/1 |" in hot
    assert "± undefined" in hot and "collapsed_share" in hot  # study 3 alone: one run per arm
    assert "signal/classifier_false_split" in hot  # the default classifier on both arms' rollouts
    cool = (out_dir / "comparison-t0.6" / "comparison.md").read_text()
    assert "| darling_answer w=1 − grpo w=0 | 1/1 |" in cool  # study 2 has no 0.6 evaluation
    assert "collapsed_share" not in cool  # collapse is defined at temperature 1.0 only
    assert (out_dir / "base-t0.6" / "metrics.json").is_file()
    verdicts = json.loads((out_dir / "verdicts.json").read_text())
    assert [v["endpoint"] for v in verdicts] == ["H1", "H2a", "H2b"]
    assert [(v["runs"], v["baseline_runs"]) for v in verdicts] == [(3, 3), (3, 3), (1, 1)]
    assert verdicts[2]["verdict"] == "not met"  # one run per arm: no interval, never met

    run()  # the same command again: runs end at once, evaluations are not redone
    assert evaluated == {p: p.stat().st_mtime_ns
                         for p in out_dir.glob("*/eval-k4-t*/metrics.json")}


def test_verdict_rules_are_the_plans():
    from darling.eval.verdicts import non_inferiority, superiority

    assert superiority(0.4, 2.0, 0.049) == "supported"
    assert superiority(0.4, 2.0, 0.05) == "undecided"  # interval above 0, p not below alpha
    assert superiority(-3.0, -0.1, 0.01) == "refuted"
    assert superiority(-1.0, 2.0, 0.01) == "undecided"  # interval across 0
    assert superiority(float("nan"), float("nan"), 0.01) == "undecided"
    assert non_inferiority(-0.049, -0.05) == "met"
    assert non_inferiority(-0.05, -0.05) == "not met"  # the lower end must be above the margin
    assert non_inferiority(float("nan"), -0.05) == "not met"


def test_study3_verdicts_read_both_comparisons(tmp_path):
    """sweeps/study3_verdicts.py takes the pooled rows (not the per-study ones) of the two
    comparisons' unpaired.csv and applies each endpoint's rule."""
    header = "difference,metric,estimate,low,high,df,p,runs,baseline_runs\n"
    pooled, study2 = "darling_answer w=1 − grpo w=0", "darling_answer w=1 − grpo w=0 (study 2)"
    rows = {"comparison-t1.0": [(pooled, "correct_distinct@k", 4.0, 1.0, 7.0, 33.2, 0.01),
                                (study2, "correct_distinct@k", -4.0, -9.0, 1.0, 9.0, 0.3),
                                (pooled, "pass@1", -0.02, -0.06, 0.02, 30.1, 0.3)],
            "comparison-t0.6": [(pooled, "pass@1", -0.01, -0.04, 0.02, 25.0, 0.5)]}
    for folder, lines in rows.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "unpaired.csv").write_text(header + "".join(
            ",".join(map(str, (*row, 20, 20))) + "\n" for row in lines))
    out = subprocess.run([sys.executable, "sweeps/study3_verdicts.py", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| H1: correct_distinct@32, temperature 1.0 (primary) | +4.000 | [+1.000, +7.000] " \
        "[33.2] | 0.01 | 20/20 | **supported** |" in out.stdout
    verdicts = json.loads((tmp_path / "verdicts.json").read_text())
    assert [v["verdict"] for v in verdicts] == ["supported", "not met", "met"]
    (tmp_path / "comparison-t0.6" / "unpaired.csv").write_text(header)
    out = subprocess.run([sys.executable, "sweeps/study3_verdicts.py", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 1 and "has no row" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "comparison-t0.6" / "unpaired.csv").unlink()
    out = subprocess.run([sys.executable, "sweeps/study3_verdicts.py", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 1 and "does not exist" in out.stderr and "Traceback" not in out.stderr
