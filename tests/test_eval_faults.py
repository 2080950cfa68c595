"""Evaluation with bad inputs and failing scorers: clear errors early, nothing lost, nothing
silently wrong (issue 11: bug 3, faults 4, 6, 7, 11, 12)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from darling.eval.report import evaluation_report
from darling.eval.run import evaluate, load_eval_policy
from darling.quality.base import QualityFailure
from darling.tasks.prompts import load_prompts
from tests.conftest import ROOT, TINY
from tests.test_evaluation import EVAL_TINY, compose_eval


def _generations(out):
    return [json.loads(line) for line in (out / "generations.jsonl").open()]


def test_missing_scores_are_passed_through_not_dropped():
    # one group of 4; the judge failed on generation 2 (NaN). Utility must leave the whole group
    # out (not score it over 3 generations with shifted patience weights); pass@k keeps k = 4.
    quality = np.array([8.0, np.nan, 4.0, 6.0, 5.0, 5.0, 5.0, 5.0])
    gids = ["a"] * 4 + ["b"] * 4
    labels = np.array([0, 1, 2, 0, 3, 3, 4, 4])
    correct = np.array([1, 0, 1, np.nan, 0, 0, 0, 1])  # the verifier failed once in group a
    summary, rows = evaluation_report(["x"] * 8, gids, quality, labels, correct=correct,
                                      utility_scores=True)
    assert summary["quality_missing"] == 1.0 and summary["utility_groups_missing"] == 1.0
    # group b alone: classes 3, 3, 4, 4 -> (5 + 0 + 0.64 * 5 + 0) / (1 + 0.8 + 0.64 + 0.512)
    assert summary["utility@k"] == pytest.approx(8.2 / 2.952)
    assert summary["correct_missing"] == 1.0 and summary["correct_groups_missing"] == 1.0
    assert {"pass@1", "pass@2", "pass@4"} <= set(summary)  # default ks of the full groups
    assert summary["pass@1"] == pytest.approx(0.25) and summary["pass@4"] == 1.0  # group b
    assert summary["distinct@k"] == 2.5  # every generation keeps its class: 3 and 2
    assert np.isnan(rows[0]["correct_distinct"]) and rows[1]["correct_distinct"] == 1.0


def test_every_correctness_missing_gives_nan_pass_at_k_not_a_crash():
    summary, _ = evaluation_report(["x"] * 2, [0, 0], np.array([np.nan] * 2), np.array([0, 1]),
                                   correct=np.array([np.nan, np.nan]))
    assert np.isnan(summary["pass@1"]) and summary["correct_groups_missing"] == 1.0


def test_failed_judge_row_keeps_its_group_and_the_ks(tmp_path):
    cfg = compose_eval(*EVAL_TINY, "quality=callable",
                       "quality.path=tests.eval_helpers:first_of_group_fails")
    summary = evaluate(cfg, tmp_path / "out")
    assert summary["quality_missing"] == 1.0 and summary["generations"] == 12.0
    assert {"pass@1", "pass@2", "pass@4"} <= set(summary)  # before: a 3-sample group, no pass@4
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    assert metrics["quality_missing"] == 1.0 and metrics["correct_groups_missing"] == 0.0


def test_pass_at_k_comes_from_the_verifier_not_the_judge(tmp_path):
    # a constant judge score of 3 used to count as "correct" (quality >= 1): pass@1 = 1.0
    cfg = compose_eval(*EVAL_TINY, "quality=callable",
                       "quality.path=tests.eval_helpers:constant_judge")
    summary = evaluate(cfg, tmp_path / "out")
    records = _generations(tmp_path / "out")
    assert all(r["quality"] == 3.0 for r in records)
    share = np.mean([r["correct"] for r in records])  # equal group sizes: pass@1 = mean
    assert summary["pass@1"] == pytest.approx(share) and summary["pass@1"] < 1.0


def test_unreachable_judge_keeps_generations_and_reports(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = compose_eval(*EVAL_TINY, "quality=judge", "quality.base_url=http://127.0.0.1:9/v1",
                       "quality.model=m", "quality.retries=1", "quality.timeout_s=1")
    summary = evaluate(cfg, tmp_path / "out")
    records = _generations(tmp_path / "out")
    assert len(records) == 12 and all(r["quality"] is None for r in records)
    assert summary["quality_missing"] == 12.0 and np.isnan(summary["quality_mean"])
    assert "pass@4" in summary  # correctness still comes from the verifier


def test_raising_scorer_keeps_generations(tmp_path):
    cfg = compose_eval(*EVAL_TINY, "quality=callable", "quality.path=tests.helpers:raising_quality")
    with pytest.raises(QualityFailure, match="generations are kept"):
        evaluate(cfg, tmp_path / "out")
    assert len(_generations(tmp_path / "out")) == 12


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.k=0", "eval.k=0"),
        ("eval.k=-2", "eval.k=-2"),
        ("eval.max_prompts=0", "eval.max_prompts=0"),
        ("eval.max_prompts=-1", "eval.max_prompts=-1"),
        ("eval.ks=[0,2]", "outside 1..eval.k=4"),
        ("quality.api_key_env=sk-abc123", "NAME of an environment variable"),
    ],
)
def test_bad_eval_settings_are_refused_before_anything_is_written(tmp_path, override, message):
    extra = ["quality=judge", "quality.base_url=http://x", "quality.model=m"] if (
        "api_key" in override) else []
    cfg = compose_eval(*EVAL_TINY, *extra, override)
    with pytest.raises(ValueError, match=message):
        evaluate(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _evaluate_py(tmp_path, *overrides):
    return subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), "model=tiny", "eval.embedder=null",
         *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )


def test_missing_ckpt_creates_nothing(tmp_path):
    out = _evaluate_py(tmp_path, "ckpt=runs/x/checkpoints/last.ckpt")
    assert out.returncode != 0
    assert "does not exist" in out.stderr
    assert not (tmp_path / "runs").exists(), sorted(p.name for p in tmp_path.rglob("*"))


def test_api_key_on_the_command_line_is_refused_before_anything_is_written(tmp_path):
    out = _evaluate_py(tmp_path, "quality=judge", "quality.base_url=http://x", "quality.model=m",
                       "quality.api_key_env=sk-live-0123456789", "eval.out_dir=out")
    assert out.returncode != 0 and "NAME of an environment variable" in out.stderr
    assert "sk-live-0123456789" not in out.stderr + out.stdout
    assert not (tmp_path / "out").exists()  # refused before Hydra wrote .hydra/


@pytest.fixture
def fake_run(tmp_path, compose_cfg):
    """A run dir with the config.yaml of a tiny training run and a checkpoints/ folder."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    OmegaConf.save(compose_cfg(*TINY), run / "config.yaml")
    return run


def _checkpoint_error(run, ckpt):
    cfg = compose_eval(*EVAL_TINY, f"ckpt={ckpt}")
    with pytest.raises(ValueError) as info:
        load_eval_policy(cfg)
    return str(info.value)


def test_unreadable_checkpoints_give_short_clear_errors(fake_run):
    random_bytes = fake_run / "checkpoints" / "random.ckpt"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    message = _checkpoint_error(fake_run, random_bytes)
    assert "not a readable checkpoint" in message and "random.ckpt" in message
    assert "weights_only=False" not in message.replace("never", "")  # no unsafe advice
    whole = fake_run / "checkpoints" / "whole.ckpt"
    torch.save({"state_dict": {"policy.w": torch.zeros(1000)}}, whole)
    truncated = fake_run / "checkpoints" / "truncated.ckpt"
    truncated.write_bytes(whole.read_bytes()[:2000])
    assert "not a readable checkpoint" in _checkpoint_error(fake_run, truncated)


def test_checkpoint_of_another_model_is_summarised(fake_run):
    other = fake_run / "checkpoints" / "other.ckpt"
    keys = {f"policy.model.layers.{i}.mlp.other_proj.weight": torch.zeros(1) for i in range(300)}
    torch.save({"state_dict": keys}, other)
    message = _checkpoint_error(fake_run, other)
    assert "do not fit the policy" in message and "300 unexpected keys" in message
    assert len(message) < 1500  # not 19 kB of key names
    not_darling = fake_run / "checkpoints" / "plain.ckpt"
    torch.save({"weights": torch.zeros(1)}, not_darling)
    assert "not a darling training checkpoint" in _checkpoint_error(fake_run, not_darling)


def test_prompt_file_with_non_utf8_bytes_names_path_and_line(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b'{"prompt": "fine"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"prompts.jsonl: line 2: not UTF-8"):
        load_prompts(path)


def test_plots_module_leaves_the_matplotlib_backend_alone(tmp_path):
    # the raw rcParams value: get_backend() itself would resolve (and import pyplot)
    code = ("import sys, matplotlib; raw = lambda: dict.__getitem__(matplotlib.rcParams, "
            "'backend'); before = raw(); import darling.eval.plots as p; "
            "assert raw() == before, (before, raw()); "
            "assert 'matplotlib.pyplot' not in sys.modules; "
            f"p.plot_pass_at_k({{'a': {{1: (0.5, 0.1), 2: (0.7, 0.1)}}}}, r'{tmp_path}/x.png')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "x.png").stat().st_size > 1000


def test_train_validate_refuses_an_api_key_in_place_of_its_name(compose_cfg):
    from darling.train.validation import validate

    base = [o for o in TINY if not o.startswith("quality")]
    cfg = compose_cfg(*base, "quality=judge", "quality.base_url=http://x", "quality.model=m",
                      "quality.api_key_env=sk-abc123")
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        validate(cfg)
