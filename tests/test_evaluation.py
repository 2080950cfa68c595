"""evaluate.py: report golden values, input errors, an end-to-end run and a comparison."""

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from darling.eval.compare import (
    compare,
    mean_interval,
    paired_differences,
    permutation_pvalue,
    training_signals,
    unpaired_differences,
    welch_interval,
)
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
    assert "| grpo w=0 | 1 | 2.000 (1 run, no interval) | 0.500 (1 run, no interval) |" in (
        tmp_path / "comparison" / "comparison.md").read_text()


def test_failed_quality_rows_are_counted(tmp_path):
    cfg = compose_eval(*EVAL_TINY, "quality=callable", "quality.path=tests.helpers:flaky_judge",
                       "data.eval_path=" + str(_open_prompts(tmp_path)))
    summary = evaluate(cfg, tmp_path / "out")
    assert summary["quality_missing"] == 6.0  # every other generation of 3 prompts x 4
    assert 1.0 <= summary["quality_mean"] <= 10.0
    # flaky_judge scores generation i as 1 + len(text) % 10 when i is even, else fails: the mean
    # is over the 6 scored generations only, each kept with its score in generations.jsonl
    lines = (tmp_path / "out" / "generations.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    expected = [None if i % 2 else 1.0 + len(r["response"]) % 10 for i, r in enumerate(rows)]
    assert [r["quality"] for r in rows] == expected
    scored = [q for q in expected if q is not None]
    assert summary["quality_mean"] == pytest.approx(sum(scored) / len(scored), rel=1e-12)


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
    # pass@1 is the mean over prompts of each prompt's share of correct generations
    rows = [json.loads(line) for line in (tmp_path / "out" / "generations.jsonl").open()]
    correct = {}
    for r in rows:
        correct.setdefault(r["group_id"], []).append(float(r["correct"]))
    assert len(correct) == 3 and all(len(c) == 4 for c in correct.values())
    assert summary["pass@1"] == pytest.approx(
        sum(sum(c) / 4 for c in correct.values()) / 3, rel=1e-12)
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


# Fixed numbers for the unpaired analysis: per-seed correct_distinct@32 of study 2's grpo and
# darling_answer arms as docs/results.md prints them (seeds 0-5), and three runs against four.
STUDY2_GRPO = [5.5, 4.1, 11.7, 2.0, 4.0, 8.1]
STUDY2_ANSWER = [14.4, 3.7, 2.1, 9.4, 9.3, 2.2]


def test_welch_interval_against_scipy():
    from scipy import stats

    for x, y in [(STUDY2_ANSWER, STUDY2_GRPO), ([0.1, 0.4, 0.35], [0.2, 0.25, 0.3, 0.9])]:
        diff, half, df = welch_interval(x, y)
        ref = stats.ttest_ind(x, y, equal_var=False)
        low, high = ref.confidence_interval(0.95)
        assert df == pytest.approx(ref.df, rel=1e-12)
        assert (diff - half, diff + half) == pytest.approx((low, high), rel=1e-12)
    # by hand: v1 = var([1, 2, 3]) / 3 = 1/3, v2 = var([0, 2, 4]) / 3 = 4/3, se = sqrt(5/3);
    # df = (5/3)^2 / ((1/3)^2 / 2 + (4/3)^2 / 2) = (25/9) / (17/18) = 50/17
    diff, half, df = welch_interval([1.0, 2.0, 3.0], [0.0, 2.0, 4.0])
    assert diff == 0.0 and df == pytest.approx(50 / 17)
    assert half == pytest.approx(stats.t.ppf(0.975, 50 / 17) * (5 / 3) ** 0.5)


def test_welch_interval_is_undefined_with_one_run_per_arm():
    diff, half, df = welch_interval([0.5], [0.25])
    assert diff == 0.25 and np.isnan(half) and np.isnan(df)
    diff, half, df = welch_interval([0.5, 0.5], [0.25, 0.25])  # no spread in either arm
    assert diff == 0.25 and np.isnan(half) and np.isnan(df)


def test_permutation_pvalue_exact_against_scipy():
    from scipy import stats

    # by hand: pooled 1, 2, 3, 4; x = {3, 4} is one of C(4, 2) = 6 labellings, whose
    # differences are s - 5 for x-sums s = 3, 4, 5, 5, 6, 7: -2, -1, 0, 0, 1, 2; t = 2 is the
    # largest, P(T >= 2) = 1/6, so p = 2 * 1/6 = 1/3
    assert permutation_pvalue([3.0, 4.0], [1.0, 2.0]) == (pytest.approx(1 / 3), 6, True)
    for x, y in [(STUDY2_ANSWER, STUDY2_GRPO), ([0.1, 0.4, 0.35], [0.2, 0.25, 0.3, 0.9])]:
        p, count, exact = permutation_pvalue(x, y)  # C(12, 6) = 924 and C(7, 3) = 35 labellings
        ref = stats.permutation_test(
            (x, y), lambda a, b, axis: np.mean(a, axis=axis) - np.mean(b, axis=axis),
            permutation_type="independent", vectorized=True, n_resamples=np.inf)
        assert exact and count == len(ref.null_distribution)
        assert p == pytest.approx(ref.pvalue, rel=1e-12)


def test_permutation_pvalue_monte_carlo_is_seeded_and_near_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    x, y = rng.normal(1.0, 2.0, 20), rng.normal(0.0, 2.0, 20)  # C(40, 20) ~ 1.4e11 labellings
    p, count, exact = permutation_pvalue(x, y, n_resamples=4999, seed=3)
    assert not exact and count == 4999
    assert permutation_pvalue(x, y, n_resamples=4999, seed=3)[0] == p  # same seed, same p
    # the same runs in another order (files are found in any order): the same p
    assert permutation_pvalue(x[::-1], np.roll(y, 7), n_resamples=4999, seed=3)[0] == p
    ref = stats.permutation_test(
        (x, y), lambda a, b, axis: np.mean(a, axis=axis) - np.mean(b, axis=axis),
        permutation_type="independent", vectorized=True, n_resamples=4999, rng=1)
    # both are estimates from 4999 draws of p ~ 0.1: sd of each about sqrt(0.1 * 0.9 / 4999)
    # = 0.004, of their difference 0.006; 0.025 is four of those
    assert abs(p - ref.pvalue) < 0.025
    assert (p * 5000) == pytest.approx(round(p * 5000))  # (count + 1) / (n_resamples + 1)


def test_unpaired_differences_count_every_run_and_split_by_study():
    def record(reward, weight, study, seed, value):
        run = {"reward": reward, "diversity_weight": weight, "seed": seed, "study": study}
        return {"run": run, "metrics": {"pass@1": value}}

    records = [record("grpo", 0.0, "2", s, v) for s, v in [(0, 0.30), (1, 0.40)]]
    records += [record("grpo", 0.0, "3", 6, 0.35)]
    records += [record("darling_answer", 1.0, "2", s, v) for s, v in [(0, 0.5), (2, 0.6)]]
    records += [record("darling_answer", 1.0, "3", s, v) for s, v in [(1, 0.55), (6, 0.45)]]
    records += [{"run": {"source": "base", "model": "m"}, "metrics": {"pass@1": 0.1}}]
    table = unpaired_differences(records, "grpo w=0")
    assert list(table) == ["darling_answer w=1 − grpo w=0",
                           "darling_answer w=1 − grpo w=0 (study 2)",
                           "darling_answer w=1 − grpo w=0 (study 3)"]
    diff, half, df, p, runs, base_runs = table["darling_answer w=1 − grpo w=0"]["pass@1"]
    x, y = [0.5, 0.6, 0.55, 0.45], [0.30, 0.40, 0.35]
    assert (runs, base_runs) == (4, 3) and diff == pytest.approx(np.mean(x) - np.mean(y))
    assert (half, df) == pytest.approx(welch_interval(x, y)[1:])
    assert p == pytest.approx(permutation_pvalue(x, y)[0])
    _, half3, df3, _, runs3, base3 = table["darling_answer w=1 − grpo w=0 (study 3)"]["pass@1"]
    assert (runs3, base3) == (2, 1) and np.isnan(half3) and np.isnan(df3)  # one grpo run
    # paired: study 2's seed 0 and study 3's seed 6 pair; study 3's seed 1 must not pair with
    # study 2's grpo seed 1 (different studies share no first rollouts), nor seed 2 with anything
    assert paired_differences(records, "grpo w=0")[
        "darling_answer w=1 − grpo w=0"]["pass@1"][2] == 2


def _metrics_file(folder, reward, seed, value, temperature=1.0, top_p=1.0, study=None):
    folder.mkdir(parents=True)
    run = {"reward": reward, "diversity_weight": 0.0 if reward == "grpo" else 1.0, "seed": seed}
    if study is not None:
        run["study"] = study
    record = {"run": run, "eval": {"k": 4}, "prompts": "builtin:heldout",
              "sampling": {"temperature": temperature, "top_p": top_p, "max_new_tokens": 5},
              "metrics": {"pass@1": value, "distinct@k": 10 * value}}
    (folder / "metrics.json").write_text(json.dumps(record))


def test_compare_analysis_flag_writes_the_unpaired_table(tmp_path):
    for seed, (g, a) in enumerate([(0.3, 0.5), (0.4, 0.35)]):
        _metrics_file(tmp_path / f"grpo{seed}", "grpo", seed, g, study="3")
        _metrics_file(tmp_path / f"answer{seed}", "darling_answer", seed, a, study="3")
    _metrics_file(tmp_path / "answer_only", "darling_answer", 9, 0.45, study="3")
    out = compare([tmp_path], tmp_path / "comparison", baseline="grpo w=0", analysis="unpaired",
                  collapsed_below=4.0)
    text = (tmp_path / "comparison" / "comparison.md").read_text()
    assert "Paired by seed" not in text and "Unpaired, difference from grpo w=0" in text
    diff, half, df, p, _, _ = out["unpaired"]["darling_answer w=1 − grpo w=0"]["pass@1"]
    assert f"| darling_answer w=1 − grpo w=0 | 3/2 | {diff:+.3f} ± {half:.3f} [df {df:.1f}; " \
        f"p {p:.3g}] |" in text
    # collapsed: distinct@k = 10 x pass@1 below 4.0; grpo's runs have 3.0 (yes) and 4.0 (no)
    assert out["arms"]["grpo w=0"]["collapsed_share"][0] == 0.5
    rows = (tmp_path / "comparison" / "unpaired.csv").read_text().splitlines()
    assert rows[0] == "difference,metric,estimate,low,high,df,p,runs,baseline_runs"
    assert rows[1].startswith("darling_answer w=1 − grpo w=0,pass@1,")
    assert not any(",collapsed_share," in row for row in rows)  # reported, never tested
    runs = (tmp_path / "comparison" / "runs.csv").read_text().splitlines()
    assert runs[0].startswith("arm,study,seed,") and len(runs) == 6
    both = compare([tmp_path], tmp_path / "both", baseline="grpo w=0", analysis="both")
    assert both["paired"] and both["unpaired"]
    with pytest.raises(ValueError, match="analysis='welch'"):
        compare([tmp_path], tmp_path / "bad", baseline="grpo w=0", analysis="welch")


def test_one_run_per_arm_says_the_interval_is_undefined(tmp_path):
    _metrics_file(tmp_path / "g", "grpo", 0, 0.3)
    _metrics_file(tmp_path / "a", "darling_answer", 0, 0.5)
    compare([tmp_path], tmp_path / "comparison", baseline="grpo w=0", analysis="both")
    text = (tmp_path / "comparison" / "comparison.md").read_text()
    assert "± 0.000" not in text
    assert "+0.200 ± undefined (an arm has one run or no spread)" in text
    assert "| grpo w=0 | 1 | 0.300 (1 run, no interval) |" in text


def test_evaluations_at_two_temperatures_get_two_dirs_and_are_not_pooled(tmp_path):
    cfg = compose_eval(*EVAL_TINY, "rollout.temperature=0.6", "rollout.top_p=0.95")
    assert cfg.eval.out_dir == "evals/tiny-base-k4-seed0-t0.6-p0.95"
    assert compose_eval(*EVAL_TINY).eval.out_dir == "evals/tiny-base-k4-seed0"
    _metrics_file(tmp_path / "hot", "grpo", 0, 0.3)
    _metrics_file(tmp_path / "cool", "grpo", 1, 0.4, temperature=0.6, top_p=0.95)
    with pytest.raises(ValueError, match=r"differ in rollout.temperature \(0.6: 1 evaluation"):
        compare([tmp_path], tmp_path / "comparison")


def _logged_run(tmp_path, classes):
    """A trained run as compare sees it: config.yaml naming its answer-set training prompts, a
    rollout log of one group (answers red, red, blue, blue and one wrong answer) whose logged
    classes are ``classes``, and an evaluation's metrics.json pointing back at the run."""
    prompts = tmp_path / "colours.jsonl"
    prompts.write_text(json.dumps({"id": "c", "prompt": "Name a colour.",
                                   "answers": ["red", "blue"]}) + "\n")
    run = tmp_path / "run"
    (run / "rollouts").mkdir(parents=True)
    (run / "config.yaml").write_text(f"data:\n  train_path: {prompts}\n")
    responses = ["red", "Red.", "blue", "blue", "green"]
    (run / "rollouts" / "rank0.jsonl").write_text("".join(json.dumps({
        "step": 0, "group_id": 0, "prompt_id": "c", "response": text, "class": label,
        "quality": float(text != "green"), "advantage": 0.0})
        + "\n" for text, label in zip(responses, classes, strict=True)))
    _metrics_file(tmp_path / "eval", "darling_answer", 0, 0.8)
    record = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    record["run"]["run_dir"] = str(run)
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps(record))
    return record


def test_one_classifier_judges_every_runs_logged_rollouts(tmp_path):
    """The logged classes merge everything (false merge 1 over the 4 red-blue pairs); re-read by
    an exact-text partition, "red" and "Red." split (1 of the 2 same-answer pairs) and nothing
    merges; by the answer partition, neither. The wrong answer is in no pair."""
    from darling.partition.keyed import AnswerSetPartition, ExactTextPartition

    record = _logged_run(tmp_path, [0, 0, 0, 0, 0])
    logged = training_signals([record])[0]["metrics"]
    assert (logged["signal/false_merge"], logged["signal/false_split"]) == (1.0, 0.0)
    assert "signal/classifier_false_split" not in logged
    exact = training_signals([record], ExactTextPartition())[0]["metrics"]
    assert (exact["signal/classifier_false_merge"], exact["signal/classifier_false_split"]) == (
        0.0, 0.5)
    assert exact["signal/false_merge"] == 1.0  # the logged partition's own columns stay
    answers = training_signals([record], AnswerSetPartition())[0]["metrics"]
    assert (answers["signal/classifier_false_merge"],
            answers["signal/classifier_false_split"]) == (0.0, 0.0)
    compare([tmp_path / "eval"], tmp_path / "comparison", signal_partition=ExactTextPartition())
    text = (tmp_path / "comparison" / "comparison.md").read_text()
    assert "signal/classifier_false_split" in text and "0.500 (1 run, no interval)" in text


def test_signal_classifier_flag_reaches_compare(tmp_path):
    """``evaluate.py compare=[...] signal_classifier=true classifier=exact`` judges the logged
    rollouts by the configured classifier (the command line, end to end)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    _logged_run(tmp_path, [0, 0, 0, 0, 0])
    out = tmp_path / "comparison"
    command = [sys.executable, str(ROOT / "evaluate.py"), f"compare=[{tmp_path / 'eval'}]",
               f"eval.out_dir={out}", "signal_classifier=true", "classifier=exact"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "signal/classifier_false_split" in (out / "comparison.md").read_text()


def test_compare_finds_the_runs_from_another_folder(tmp_path, monkeypatch):
    """metrics.json names its run folder relative to where evaluate.py ran; compare run from
    elsewhere finds the run above its evaluation folder (the default layout) instead of silently
    leaving its training signal out."""
    record = _logged_run(tmp_path, [0, 0, 0, 0, 0])
    run = tmp_path / "run"
    (run / "eval").mkdir()
    record["run"]["run_dir"] = "run"  # as recorded by an evaluation run from tmp_path
    (run / "eval" / "metrics.json").write_text(json.dumps(record))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    compare([run / "eval"], tmp_path / "comparison")
    assert "signal/false_merge" in (tmp_path / "comparison" / "comparison.md").read_text()


def test_a_metric_fewer_runs_have_says_its_own_count(tmp_path):
    # pooled records of an earlier study keep only some metrics: vendi is in 2 of 3 runs of
    # darling_answer; its intervals must not read as over the row's 3 runs
    for seed, (g, a) in enumerate([(0.3, 0.5), (0.4, 0.35), (0.5, 0.45)]):
        for name, reward, value in [("grpo", "grpo", g), ("answer", "darling_answer", a)]:
            _metrics_file(tmp_path / f"{name}{seed}", reward, seed, value, study="3")
            record = json.loads((tmp_path / f"{name}{seed}" / "metrics.json").read_text())
            if name == "grpo" or seed < 2:
                record["metrics"]["vendi"] = 2.0 + value + seed
            (tmp_path / f"{name}{seed}" / "metrics.json").write_text(json.dumps(record))
    out = compare([tmp_path], tmp_path / "comparison", baseline="grpo w=0", analysis="unpaired")
    text = (tmp_path / "comparison" / "comparison.md").read_text()
    mean, half, n = out["arms"]["darling_answer w=1"]["vendi"]
    assert n == 2 and f"{mean:.3f} ± {half:.3f} (2 runs)" in text
    p_mean, p_half, _ = out["arms"]["darling_answer w=1"]["pass@1"]
    assert f"| darling_answer w=1 | 3 | {p_mean:.3f} ± {p_half:.3f} |" in text  # no count: all 3
    diff, half, df, p, runs, base_runs = out["unpaired"]["darling_answer w=1 − grpo w=0"]["vendi"]
    assert (runs, base_runs) == (2, 3)
    assert f"{diff:+.3f} ± {half:.3f} [df {df:.1f}; p {p:.3g}; 2/3 runs]" in text
    assert "| darling_answer w=1 − grpo w=0 | 3/3 |" in text
