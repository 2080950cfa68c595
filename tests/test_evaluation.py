"""evaluate.py: report golden values, input errors, an end-to-end run and a comparison."""

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from darling.eval.compare import compare, mean_interval, paired_differences
from darling.eval.config import register_eval_configs
from darling.eval.report import evaluation_report
from darling.eval.run import evaluate, find_run
from darling.eval.training_signal import training_signal
from darling.train.run import train
from tests.conftest import CONF, TINY

register_eval_configs()

EVAL_TINY = [
    "model=tiny",
    "classifier=answer",
    "eval.k=4",
    "eval.max_prompts=3",
    "eval.embedder=null",
    "rollout.max_new_tokens=5",
]


def compose_eval(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="evaluate", overrides=list(overrides))


def test_report_golden():
    # prompt a: 4 samples, classes {0,0,1,2}, correct [1,0,1,0] -> distinct 3, correct classes
    #   {0, 1} -> 2; pass@1 = 2/4; pass@2 = 1 - C(2,2)/C(4,2) = 1 - 1/6
    # prompt b: 4 samples, one class, none correct -> distinct 1, correct_distinct 0, pass 0
    texts = ["x"] * 8
    gids = ["a"] * 4 + ["b"] * 4
    labels = np.array([0, 0, 1, 2, 3, 3, 3, 3])
    correct = np.array([1, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    summary, rows = evaluation_report(texts, gids, correct.astype(float), labels, correct)
    assert summary["distinct@k"] == 2.0
    assert summary["correct_distinct@k"] == 1.0
    assert summary["pass@1"] == pytest.approx((0.5 + 0) / 2)
    assert summary["pass@2"] == pytest.approx((1 - 1 / 6) / 2)
    assert summary["quality_mean"] == 0.25
    assert rows[0] == {"group_id": "a", "samples": 4.0, "quality_mean": 0.5, "distinct": 3.0,
                       "correct": 2.0, "correct_distinct": 2.0}


def test_report_excludes_missing_quality_from_means():
    summary, _ = evaluation_report(["a", "b"], [0, 0], np.array([1.0, np.nan]), np.array([0, 1]))
    assert summary["quality_mean"] == 1.0 and summary["quality_missing"] == 1.0


def test_mean_interval():
    mean, half = mean_interval([1.0, 2.0, 3.0])
    # t_{0.975, 2} = 4.303, s = 1, n = 3 -> 4.303 / sqrt(3) = 2.484
    assert mean == 2.0 and half == pytest.approx(2.484, abs=1e-3)


def test_find_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_run(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a darling run"):
        find_run(tmp_path)


def test_ks_larger_than_k_is_an_error(tmp_path):
    cfg = compose_eval(*EVAL_TINY, "eval.ks=[1,8]")
    with pytest.raises(ValueError, match="eval.k=4"):
        evaluate(cfg, tmp_path)


@pytest.mark.slow
def test_evaluate_and_compare_runs(compose_cfg, tmp_path):
    runs = []
    for reward in ("grpo", "darling"):
        run_dir = tmp_path / reward
        train(compose_cfg(*TINY, f"reward={reward}", "trainer.max_steps=1"), run_dir)
        runs.append(run_dir)
    for run_dir in runs:
        summary = evaluate(compose_eval(*EVAL_TINY, f"ckpt={run_dir}"), run_dir / "eval")
        assert {"pass@1", "pass@4", "distinct@k", "correct_distinct@k"} <= set(summary)
        lines = (run_dir / "eval" / "generations.jsonl").read_text().splitlines()
        assert len(lines) == 12 and {"response", "class", "quality"} <= set(json.loads(lines[0]))
        for name in ("metrics.json", "metrics.csv", "per_prompt.csv", "pass_at_k.png"):
            assert (run_dir / "eval" / name).is_file(), name
    result = compare([tmp_path], tmp_path / "comparison")
    assert set(result["arms"]) == {"grpo w=0", "darling w=1"}
    for name in ("comparison.csv", "comparison.md", "pass_at_k.png", "quality_vs_distinct.png",
                 "training_curves.png"):
        assert (tmp_path / "comparison" / name).is_file(), name
    # training signal: 2 groups, one flat (group 1's four rollouts all scored 0.9 by length)
    assert "| grpo w=0 | 1 | 2.000 ± n/a | 0.500 ± n/a |" in (
        tmp_path / "comparison" / "comparison.md").read_text()


def test_failed_quality_rows_are_counted(tmp_path):
    cfg = compose_eval(*EVAL_TINY, "quality=callable", "quality.path=tests.helpers:flaky_judge",
                       "data.eval_path=" + str(_open_prompts(tmp_path)))
    summary = evaluate(cfg, tmp_path / "out")
    assert summary["quality_missing"] == 6.0  # every other generation of 3 prompts x 4
    assert 1.0 <= summary["quality_mean"] <= 10.0


def _open_prompts(tmp_path):
    path = tmp_path / "open.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Write a line about {w}."}) + "\n"
                            for w in ("rain", "bread", "maps")))
    return path


def test_wandb_logger_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    summary = evaluate(compose_eval(*EVAL_TINY, "logger=wandb"), tmp_path / "out")
    assert "pass@1" in summary
    assert list((tmp_path / "out").rglob("*.wandb")), "no offline wandb run was written"


def test_training_signal_against_hand_computed_groups():
    def rows(step, quality, advantage):
        return [{"step": step, "group_id": 0, "quality": q, "advantage": a}
                for q, a in zip(quality, advantage, strict=True)]

    grpo = rows(0, [1, 1, 0, 0], [0.5, 0.5, -0.5, -0.5]) + rows(1, [0, 0, 0, 0], [0, 0, 0, 0])
    assert training_signal(grpo) == {
        "signal/groups": 2.0, "signal/flat_share": 0.5, "signal/shift_mean": 0.0,
        "signal/sign_flip_share": 0.0, "signal/top_spread": 0.0,
    }
    # DARLING: the two correct answers are one class (Div 1/3), the wrong ones distinct; rewards
    # 1/3, 1/3, 0, 0 -> advantages 1/6, 1/6, -1/6, -1/6; a failed row is left out.
    darling = rows(0, [1, 1, 0, 0, float("nan")], [1 / 6, 1 / 6, -1 / 6, -1 / 6, 0.0])
    darling += rows(1, [1, 1, 1, 0], [0.25, -0.25, 0.25, -0.25])  # repeated answer pushed down
    signal = training_signal(darling)
    assert signal["signal/flat_share"] == 0.0
    assert signal["signal/shift_mean"] == pytest.approx((4 / 3 + 0 + 0.5 + 0 + 0.5) / 8)
    assert signal["signal/sign_flip_share"] == pytest.approx(1 / 8)
    assert signal["signal/top_spread"] == pytest.approx((0 + 0.5) / 2)


def test_paired_differences_pair_runs_by_seed():
    def record(reward, weight, seed, value):
        run = {"reward": reward, "diversity_weight": weight, "seed": seed}
        return {"run": run, "metrics": {"pass@1": value}}

    records = [record("grpo", 0.0, s, v) for s, v in [(0, 0.30), (1, 0.40), (2, 0.20)]]
    records += [record("darling", 1.0, s, v) for s, v in [(0, 0.35), (1, 0.46), (2, 0.24)]]
    records += [record("ngram", 1.0, 5, 0.9)]  # no grpo run with seed 5: nothing to pair
    records += [{"run": {"source": "base", "model": "m"}, "metrics": {"pass@1": 0.1}}]
    paired = paired_differences(records, "grpo w=0")
    assert list(paired) == ["darling w=1 − grpo w=0"]
    mean, half, pairs = paired["darling w=1 − grpo w=0"]["pass@1"]
    assert pairs == 3 and mean == pytest.approx(0.05)
    # the unpaired intervals overlap, the paired one excludes 0: differences 0.05, 0.06, 0.04
    assert half == pytest.approx(4.303 * 0.01 / 3**0.5, rel=1e-3) and mean - half > 0
    with pytest.raises(ValueError, match="not an arm"):
        paired_differences(records, "grpo w=0.5")


def test_another_prompt_file_gets_its_own_dir_and_is_not_pooled(tmp_path):
    """Scoring a run on an extra prompt file never overwrites its held-out evaluation, and a
    comparison refuses to average the two as if they were seeds of one arm."""
    from darling.eval.config import default_eval_dir

    extra = tmp_path / "colours.jsonl"
    rows = [{"prompt": f"Name a {w} colour.", "answers": ["red", "blue"]} for w in ("warm", "cool")]
    extra.write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = tmp_path / "run"
    run.mkdir()
    assert default_eval_dir(str(run), "tiny", 4, 0, None, str(extra)) == str(
        run / "eval-k4-seed0-colours")
    assert default_eval_dir(str(run), "tiny", 4, 0, None, None) == str(run / "eval-k4-seed0")
    cfg = compose_eval(*EVAL_TINY)
    assert cfg.eval.out_dir == "evals/tiny-base-k4-seed0"
    cfg_extra = compose_eval(*EVAL_TINY, f"data.eval_path={extra}")
    assert cfg_extra.eval.out_dir == "evals/tiny-base-k4-seed0-colours"
    evaluate(cfg, tmp_path / "heldout")
    evaluate(cfg_extra, tmp_path / "open")
    metrics = json.loads((tmp_path / "open" / "metrics.json").read_text())
    assert metrics["prompts"] == str(extra)
    with pytest.raises(ValueError, match="differ in prompts"):
        compare([tmp_path / "heldout", tmp_path / "open"], tmp_path / "comparison")
