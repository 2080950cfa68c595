"""Faults: a real SIGTERM mid-run, then resume; an unwritable run directory."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from darling.train.run import check_writable
from tests.conftest import ROOT, TINY


def _cmd(run_dir, *overrides):
    return [sys.executable, "train.py", *TINY, f"hydra.run.dir={run_dir}", *overrides]


def _rows(run_dir):
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_sigterm_then_resume_continues_exactly(tmp_path):
    steps = ["trainer.max_steps=8", "trainer.checkpoint_every_n_steps=100"]
    straight = tmp_path / "straight"
    subprocess.run(_cmd(straight, *steps), cwd=ROOT, check=True, capture_output=True, timeout=900)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(killed, *steps), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while len(_rows(killed)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=300)
    stopped_at = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 2 <= stopped_at < 8, stopped_at

    subprocess.run(_cmd(killed, *steps, "ckpt_path=last"), cwd=ROOT, check=True,
                   capture_output=True, timeout=900)
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    keys = ["step", "reward/mean", "loss/total", "diversity/classes_per_group"]
    assert [[r[k] for k in keys] for r in _rows(straight)] == [
        [r[k] for k in keys] for r in _rows(killed)
    ]


def test_unwritable_run_dir_fails_before_training(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(OSError, match="not writable"):
        check_writable(blocked / "run")
