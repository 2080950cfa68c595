"""The sweep configs compose into the sweeps the README promises."""

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
    assert "reward: grpo,darling,ngram,additive,grpo_std" in cfg


def test_slurm_sweep_uses_submitit():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = _hydra_cfg("slurm", "hydra.launcher.partition=gpu")
    assert "SlurmLauncher" in cfg and "gpus_per_node: 8" in cfg
