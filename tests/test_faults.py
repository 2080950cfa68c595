"""Faults: a real SIGTERM mid-run, then resume; an unwritable run directory."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from darling.train.run import train
from darling.train.run_dir import check_writable
from tests.conftest import ROOT, TINY, metric_rows


def _cmd(run_dir, *overrides):
    return [sys.executable, "train.py", *TINY, f"hydra.run.dir={run_dir}", *overrides]


@pytest.mark.slow
def test_sigterm_then_resume_continues_exactly(tmp_path):
    steps = ["trainer.max_steps=8", "trainer.checkpoint_every_n_steps=100"]
    straight = tmp_path / "straight"
    subprocess.run(_cmd(straight, *steps), cwd=ROOT, check=True, capture_output=True, timeout=900)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(killed, *steps), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while len(metric_rows(killed)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]  # `train.py && evaluate.py` stops here
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
    assert [[r[k] for k in keys] for r in metric_rows(straight)] == [
        [r[k] for k in keys] for r in metric_rows(killed)
    ]


def test_unwritable_run_dir_fails_before_training(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(OSError, match="not writable"):
        check_writable(blocked / "run")


def _steps(run_dir):
    return [int(r["step"]) for r in metric_rows(run_dir)]


def _global_step(path):
    return torch.load(path, weights_only=True)["global_step"]


def test_resume_after_an_unaligned_last_step_has_one_row_per_step(compose_cfg, tmp_path):
    # the scenario: 3 steps, checkpoints every 2, then continue to 4
    train(compose_cfg(*TINY, "trainer.max_steps=3", "trainer.checkpoint_every_n_steps=2"),
          tmp_path)
    assert _global_step(tmp_path / "checkpoints" / "last.ckpt") == 3  # the final step is saved
    train(compose_cfg(*TINY, "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=2",
                      "ckpt_path=last"), tmp_path)
    assert _steps(tmp_path) == [0, 1, 2, 3]


def test_resume_drops_rows_a_kill_left_after_the_checkpoint(compose_cfg, tmp_path):
    train(compose_cfg(*TINY, "trainer.max_steps=2"), tmp_path)
    # a SIGKILL three steps past the checkpoint leaves rows 2, 3, 4 that the resume redoes
    with (tmp_path / "metrics.csv").open("a") as f:
        width = len(metric_rows(tmp_path)[0])
        f.writelines(f"{step}" + ",-999" * (width - 1) + "\n" for step in (2, 3, 4))
    train(compose_cfg(*TINY, "trainer.max_steps=4", "ckpt_path=last"), tmp_path)
    assert _steps(tmp_path) == [0, 1, 2, 3]
    assert not any("-999" in r.values() for r in metric_rows(tmp_path))


def test_each_checkpoint_is_written_after_its_step_row(compose_cfg, tmp_path, monkeypatch):
    from darling.train.checkpoint_io import AtomicCheckpointIO

    seen = []
    real = AtomicCheckpointIO.save_checkpoint

    def recording(self, checkpoint, path, storage_options=None):
        seen.append((checkpoint["global_step"], _steps(tmp_path)))
        real(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", recording)
    train(compose_cfg(*TINY, "trainer.max_steps=3", "trainer.checkpoint_every_n_steps=2"),
          tmp_path)
    assert [g for g, _ in seen] == [2, 2, 3]  # step000002.ckpt and last.ckpt, then the final
    for global_step, rows in seen:
        # a kill right after this save resumes at global_step: every earlier row is on disk
        assert rows == list(range(global_step)), (global_step, rows)


def test_checkpoint_write_is_atomic_next_to_its_target(tmp_path, monkeypatch):
    from darling.train import checkpoint_io
    from darling.train.checkpoint_io import AtomicCheckpointIO, remove_stale_temporaries

    elsewhere = tmp_path / "tmpdir"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    target = tmp_path / "run" / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1}, target)
    assert _global_step(target) == 1

    def killed_mid_write(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # the write dies half-way
    monkeypatch.setattr(checkpoint_io.torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2}, target)
    monkeypatch.undo()
    assert _global_step(target) == 1  # the previous good copy is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]
    assert not list(elsewhere.iterdir())

    (target.parent / "last.ckpt.tmp-4242").write_bytes(b"left by a SIGKILL")
    assert [p.name for p in remove_stale_temporaries(target.parent)] == ["last.ckpt.tmp-4242"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_sigterm_before_the_last_step_exits_143(compose_cfg, tmp_path, monkeypatch):
    from darling.train.run import SIGTERM_EXIT_CODE, Preempted
    from tests import helpers

    monkeypatch.setitem(helpers.SIGTERM_AFTER_CALLS, "at", 1)
    monkeypatch.setitem(helpers.SIGTERM_AFTER_CALLS, "calls", 0)
    cfg = compose_cfg(*TINY, "trainer.max_steps=3", "trainer.checkpoint_every_n_steps=10",
                      "quality.path=tests.helpers:sigterm_quality")
    with pytest.raises(Preempted) as stop:
        train(cfg, tmp_path)
    assert stop.value.code == SIGTERM_EXIT_CODE == 143
    assert _global_step(tmp_path / "checkpoints" / "last.ckpt") == 1
    assert _steps(tmp_path) == [0]
    assert not (tmp_path / "policy").exists()


def test_sigterm_in_the_last_step_still_writes_the_policy(compose_cfg, tmp_path, monkeypatch):
    from tests import helpers

    monkeypatch.setitem(helpers.SIGTERM_AFTER_CALLS, "at", 2)
    monkeypatch.setitem(helpers.SIGTERM_AFTER_CALLS, "calls", 0)
    train(compose_cfg(*TINY, "trainer.checkpoint_every_n_steps=10",
                      "quality.path=tests.helpers:sigterm_quality"), tmp_path)
    assert (tmp_path / "policy" / "model.safetensors").is_file()
    assert _global_step(tmp_path / "checkpoints" / "last.ckpt") == 2


def test_resuming_a_finished_run_without_policy_writes_it(compose_cfg, tmp_path):
    import shutil

    train(compose_cfg(*TINY), tmp_path)
    shutil.rmtree(tmp_path / "policy")
    train(compose_cfg(*TINY, "ckpt_path=last"), tmp_path)
    assert (tmp_path / "policy" / "model.safetensors").is_file()
    assert _steps(tmp_path) == [0, 1]


def test_checkpoints_being_a_file_fails_before_training(compose_cfg, tmp_path):
    (tmp_path / "checkpoints").write_text("oops")
    with pytest.raises(NotADirectoryError, match="checkpoints is a file"):
        train(compose_cfg(*TINY), tmp_path)
    assert not (tmp_path / "metrics.csv").exists()


def test_a_huge_prompt_fails_at_start_naming_it(compose_cfg, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"id": "ok", "prompt": "Name a color.", "answers": ["red"]},
            {"id": "huge", "prompt": "word " * 40_000, "answers": ["x"]}]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = compose_cfg(*TINY, f"data.train_path={prompts}")
    with pytest.raises(ValueError, match=r"max_prompt_tokens=1024:\n  id 'huge' \(row 2\)"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.csv").exists()


@pytest.mark.parametrize("override", ["seed=1", "reward.diversity_weight=0.5",
                                      "rollout.temperature=0.7"])
def test_resume_under_another_config_is_refused(compose_cfg, tmp_path, override):
    train(compose_cfg(*TINY), tmp_path)
    saved = (tmp_path / "config.yaml").read_text()
    key = override.split("=")[0]
    with pytest.raises(ValueError, match=rf"differ.*\n  {key}: "):
        train(compose_cfg(*TINY, "trainer.max_steps=3", override, "ckpt_path=last"), tmp_path)
    assert (tmp_path / "config.yaml").read_text() == saved
    # what a resume may change: length, checkpoint period, logging
    train(compose_cfg(*TINY, "trainer.max_steps=3", "trainer.checkpoint_every_n_steps=5",
                      "logger=none", "ckpt_path=last"), tmp_path)


def test_an_unreachable_judge_stops_training(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.max_steps=5", "max_failed_steps=2",
                      "quality.path=tests.helpers:always_failing_quality")
    with pytest.raises(RuntimeError, match="every rollout for 2 steps in a row"):
        train(cfg, tmp_path)
    assert not (tmp_path / "policy").exists()
