"""Two CPU processes (gloo) own whole groups: their per-group rollouts and rewards equal those of
one process that takes both processes' prompts."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY


def _run(run_dir, *overrides):
    out = subprocess.run(
        [sys.executable, "train.py", *TINY, "trainer.max_steps=1", f"hydra.run.dir={run_dir}",
         *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-4000:]


def _records(run_dir):
    records = {}
    for path in sorted((run_dir / "rollouts").glob("rank*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            records.setdefault(r["group_id"], []).append(
                (r["response"], r["quality"], r["diversity"], r["reward"], r["advantage"])
            )
    return records


@pytest.mark.slow
def test_two_ranks_equal_one_rank_with_twice_the_prompts(tmp_path):
    _run(tmp_path / "ddp", "trainer=ddp_cpu", "data.prompts_per_step=1")
    _run(tmp_path / "single", "data.prompts_per_step=2")
    ddp, single = _records(tmp_path / "ddp"), _records(tmp_path / "single")
    assert sorted(ddp) == sorted(single) == [0, 1]  # rank r owns group r, whole
    for gid in single:
        assert ddp[gid] == single[gid]
    assert sorted(p.name for p in (tmp_path / "ddp" / "rollouts").iterdir()) == [
        "rank0.jsonl", "rank1.jsonl"]
