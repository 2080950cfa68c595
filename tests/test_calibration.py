"""Calibration metrics against scikit-learn, and the labelled-pairs loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from darling.partition.calibration import (
    best_accuracy_threshold,
    best_f1_threshold,
    classification_report,
    roc_auc,
)
from darling.workshop.pairs_data import load_pairs, prompt_folds, split_by_prompt


def _random_case(seed: int, n: int = 60, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    labels[:2] = (0, 1)  # both classes present
    scores = rng.random(n) + 0.4 * labels
    if ties:
        scores = np.round(scores, 1)
    return labels, scores


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_matches_sklearn(seed, ties):
    labels, scores = _random_case(seed, ties=ties)
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_roc_auc_golden_and_errors():
    # positives 0.35, 0.8; negatives 0.1, 0.4: ordered pairs (0.35>0.1, 0.8>0.1, 0.8>0.4) -> 3/4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts one half
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.2, float("nan")])
    with pytest.raises(ValueError, match="labels"):
        roc_auc([0, 1, 1], [0.2, 0.3])


def _brute_force_best(labels, scores, metric):
    """Best metric over every threshold in a fine grid plus all scores (reference loop)."""
    grid = np.concatenate([np.unique(scores), np.linspace(-0.1, 1.5, 401)])
    return max(metric(labels, scores > t) for t in grid)


@pytest.mark.parametrize("seed", range(4))
def test_best_thresholds_match_sklearn_brute_force(seed):
    labels, scores = _random_case(seed, ties=seed % 2 == 1)
    threshold, f1 = best_f1_threshold(labels, scores)
    assert f1 == pytest.approx(f1_score(labels, scores > threshold))
    assert f1 == pytest.approx(
        _brute_force_best(labels, scores, lambda y, p: f1_score(y, p, zero_division=0))
    )
    threshold, accuracy = best_accuracy_threshold(labels, scores)
    assert accuracy == pytest.approx(accuracy_score(labels, scores > threshold))
    assert accuracy == pytest.approx(_brute_force_best(labels, scores, accuracy_score))


def test_best_f1_golden():
    # 0.4 separates {0.2} from {0.6, 0.9}: TP=2, FP=0, FN=0 -> F1 = 1
    assert best_f1_threshold([0, 1, 1], [0.2, 0.6, 0.9]) == (0.4, 1.0)


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.9, 2.0])
def test_classification_report_matches_sklearn(threshold):
    labels, scores = _random_case(7)
    report = classification_report(labels, scores, threshold)
    pred = scores > threshold
    assert report["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert report["accuracy"] == pytest.approx(accuracy_score(labels, pred))
    assert report["f1"] == pytest.approx(f1_score(labels, pred, zero_division=0))
    assert report["precision"] == pytest.approx(precision_score(labels, pred, zero_division=0))
    assert report["recall"] == pytest.approx(recall_score(labels, pred, zero_division=0))
    assert report["positives_share"] == pytest.approx(pred.mean())


# -- pairs data -----------------------------------------------------------------------------


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _record(prompt: str, label: int = 1) -> dict:
    return {"prompt": prompt, "generation_0": "a", "generation_1": "b", "similar": label,
            "labeler": "L"}


def test_load_pairs_reads_fields(tmp_path):
    rows = load_pairs(_write_jsonl(tmp_path / "p.jsonl", [_record("q1"), _record("q2", 0)]))
    assert [(r.prompt, r.text_a, r.text_b, r.label, r.labeler) for r in rows] == [
        ("q1", "a", "b", 1, "L"), ("q2", "a", "b", 0, "L")]


def test_load_pairs_errors_name_path_and_line(tmp_path):
    missing = _write_jsonl(tmp_path / "m.jsonl", [_record("q1"), {"prompt": "q2"}])
    with pytest.raises(ValueError, match=r"m\.jsonl:2: missing field"):
        load_pairs(missing)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_record("q")) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: bad JSON"):
        load_pairs(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match=r"empty\.jsonl: no pairs"):
        load_pairs(empty)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_pairs(tmp_path / "nope.jsonl")


def test_split_by_prompt_is_disjoint_and_deterministic():
    rows = [r for k in range(200) for r in load_pairs_from_dicts([_record(f"prompt {k}")] * 2)]
    train, val = split_by_prompt(rows, 0.2, seed=3)
    assert not {r.prompt for r in train} & {r.prompt for r in val}
    assert 0.1 < len(val) / len(rows) < 0.3
    again = split_by_prompt(list(reversed(rows)), 0.2, seed=3)[1]
    assert {r.prompt for r in again} == {r.prompt for r in val}
    assert {r.prompt for r in split_by_prompt(rows, 0.2, seed=4)[1]} != {r.prompt for r in val}
    folds = prompt_folds(rows, 5, seed=0)
    by_prompt = {}
    for row, fold in zip(rows, folds, strict=True):
        assert by_prompt.setdefault(row.prompt, fold) == fold


def load_pairs_from_dicts(records):
    from darling.workshop.pairs_data import PairRow

    return [PairRow(r["prompt"], r["generation_0"], r["generation_1"], r["similar"])
            for r in records]
