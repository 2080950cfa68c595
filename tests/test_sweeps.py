"""The sweep configs compose into the sweeps the README promises."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _hydra_cfg(name, *overrides):
    out = subprocess.run(
        [sys.executable, "train.py", "--config-dir", "sweeps", "--config-name", name,
         "--cfg", "hydra", *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_diversity_weight_sweep():
    cfg = _hydra_cfg("diversity_weight")
    assert "reward.diversity_weight: 0,0.25,0.5,0.75,1" in cfg and "seed: 0,1,2" in cfg


def test_experiment_sweep_differs_only_in_the_reward():
    cfg = _hydra_cfg("experiment")
    assert "reward: grpo,darling,ngram,additive,grpo_std,darling_answer" in cfg


def test_slurm_sweep_uses_submitit():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = _hydra_cfg("slurm", "hydra.launcher.partition=gpu")
    assert "SlurmLauncher" in cfg and "gpus_per_node: 8" in cfg


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
    cfg = _hydra_cfg("study2")
    assert "reward: grpo,darling,darling_answer" in cfg and "seed: 0,1,2,3,4,5" in cfg
    out = subprocess.run(
        [sys.executable, "train.py", "--config-dir", "sweeps", "--config-name", "study2",
         "--cfg", "job"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    job = out.stdout
    assert "n_per_prompt: 8" in job and "lr: 0.0005" in job and "max_steps: 80" in job
