"""Validation folds: leave-one-labeller-out and cross-source construction, scoring, the table,
the monotone head, and the train_classifier.py entry point on a tiny pairs file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from darling.partition.calibration import roc_auc
from darling.workshop.fold_scorers import build_scorers
from darling.workshop.folds import (
    fold_table,
    labeller_folds,
    prompt_source,
    score_folds,
    source_folds,
)
from darling.workshop.pairs_data import PairRow

ROOT = Path(__file__).resolve().parents[1]
WORDS = "apple river stone cloud music garden silver forest candle window bridge mountain".split()


def synthetic_rows(n: int = 48, seed: int = 0) -> list[PairRow]:
    """Pairs by 3 labellers over 2 prompt sources; similar pairs share most words."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        words = list(rng.choice(WORDS, 8))
        label = int(k % 3 == 0)
        other = words[:6] + list(rng.choice(WORDS, 2)) if label else list(rng.choice(WORDS, 8))
        rows.append(PairRow(prompt=f"p{k // 4}", text_a=" ".join(words), text_b=" ".join(other),
                            label=label, labeler=("ann", "bo", "cy")[k % 4 % 3],
                            id=f"{('WildChat', 'curated')[k % 2]}-{k}"))
    return rows


def test_labeller_folds_partition_the_pairs_and_hold_out_labellers():
    rows = synthetic_rows()
    labellers = [r.labeler for r in rows]
    folds = labeller_folds(labellers)
    assert [f.name for f in folds] == ["ann", "bo", "cy"]
    seen = sorted(i for f in folds for i in f.val)
    assert seen == list(range(len(rows)))  # every pair in exactly one validation fold
    for fold in folds:
        assert {labellers[i] for i in fold.val} == {fold.name}
        assert fold.name not in {labellers[i] for i in fold.train}
        assert sorted(fold.train + fold.val) == list(range(len(rows)))


def test_fixed_rows_are_always_trained_never_validated():
    labellers = ["a", "b", "verifier", "a", "verifier"]
    fixed = [lab == "verifier" for lab in labellers]
    for fold in labeller_folds(labellers, fixed):
        assert {2, 4} <= set(fold.train) and not {2, 4} & set(fold.val)
    assert [f.name for f in labeller_folds(labellers, fixed)] == ["a", "b"]


def test_source_folds_are_disjoint_by_source():
    rows = synthetic_rows()
    sources = [prompt_source(r.id) for r in rows]
    folds = source_folds(sources)
    assert [f.name for f in folds] == ["WildChat", "curated"]
    for fold in folds:
        assert {sources[i] for i in fold.val} == {fold.name}
        assert fold.name not in {sources[i] for i in fold.train}
        assert not set(fold.train) & set(fold.val)


def test_one_labeller_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="at least two labellers"):
        labeller_folds(["a", "a"])


def test_lexical_fold_table_matches_direct_scores():
    from darling.partition.lexical import JaccardClassifier

    rows = synthetic_rows()
    folds = labeller_folds([r.labeler for r in rows]) + source_folds(
        [prompt_source(r.id) for r in rows])
    labels = [r.label for r in rows]
    scorers = build_scorers(rows, ["jaccard", "ngram"])
    results = {name: score_folds(s, labels, folds) for name, s in scorers.items()}
    jaccard = JaccardClassifier().predict_proba([(r.text_a, r.text_b) for r in rows])
    for fold in folds:
        expected = roc_auc([labels[i] for i in fold.val], jaccard[list(fold.val)])
        assert results["jaccard"]["folds"][f"{fold.kind}/{fold.name}"] == pytest.approx(expected)
    aucs = [results["jaccard"]["folds"][f"labeller/{n}"] for n in ("ann", "bo", "cy")]
    assert results["jaccard"]["labeller/mean"] == pytest.approx(np.mean(aucs))
    assert results["jaccard"]["labeller/min"] == pytest.approx(min(aucs))
    assert results["jaccard"]["labeller/mean"] > 0.8  # similar pairs share 6 of 8 words
    table = fold_table(results, folds)
    assert "| labeller/ann |" in table and "| source mean |" in table
    assert table.splitlines()[0] == "| fold | pairs | jaccard | ngram |"


def build_tiny_encoder(path: Path) -> str:
    """A 2-layer, 32-wide random BERT with the MiniLM tokenizer, saved in ``path``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from darling.partition.encoder import default_encoder_path

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(path)
    AutoTokenizer.from_pretrained(default_encoder_path()).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> str:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_bert"))


def test_fine_tuned_rows_fit_once_per_fold(tiny_encoder):
    """The opt-in rows run through the classifiers' own fit on a tiny random encoder."""
    rows = synthetic_rows()
    folds = labeller_folds([r.labeler for r in rows])
    scorers = build_scorers(
        rows, ["finetuned", "cross_encoder"],
        finetuned_params={"encoder": tiny_encoder, "max_length": 64, "tuned_layers": 1},
        cross_encoder_params={"model": tiny_encoder, "max_length": 64, "epochs": 1},
    )
    for scorer in scorers.values():
        result = score_folds(scorer, [r.label for r in rows], folds)
        assert set(result["folds"]) == {"labeller/ann", "labeller/bo", "labeller/cy"}
        assert 0.0 <= result["labeller/min"] <= result["labeller/mean"] <= 1.0


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="finetuned"):
        build_scorers(synthetic_rows(), ["jacard"])


def test_frozen_head_row_is_the_classifiers_head_and_keeps_weights_nonnegative():
    """The ``frozen_head`` fold row fits ``EmbedOnceClassifier.fit_head``: class-weighted
    logistic regression with weights ``softplus(v) >= 0`` on standardised features."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from darling.partition.embed_once import EmbedOnceClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x @ np.array([2.0, 1.0, 0.0]) + rng.normal(size=400) > 0.8).astype(int)

    def head(features):
        f = torch.as_tensor(features, dtype=torch.float32)
        return EmbedOnceClassifier(tuned_layers=0).fit_head(f[:, 0], f[:, 1:], y.tolist())

    fitted = head(x)
    z = (x - x.mean(0)) / x.std(0, ddof=1)
    ref = LogisticRegression(C=1e6, class_weight="balanced", max_iter=2000).fit(z, y)
    w = fitted.head_weight_.numpy()
    assert np.all(w >= 0)
    assert w[:2] == pytest.approx(ref.coef_[0][:2], rel=0.1)  # the unconstrained optimum is >= 0
    w_neg = head(-x).head_weight_.numpy()  # every feature now lowers p: weights pushed to 0
    assert np.all(w_neg >= 0) and np.all(w_neg[:2] < 0.05 * w[:2])


def test_config_groups_compose():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf" / "train_classifier"),
                               version_base="1.3"):
        human = compose(config_name="config")
        rollouts = compose(config_name="config", overrides=["data=rollouts", "data.run=runs/x"])
        cross = compose(config_name="config", overrides=["classifier=cross_encoder"])
    assert human.data.source == "human"
    assert human.output_dir == "src/darling/partition/pretrained/default"
    assert rollouts.data.source == "rollouts" and rollouts.data.path == human.data.path
    assert rollouts.output_dir == "runs/x/classifier"  # never the shipped default
    assert list(human.folds.backends) == ["jaccard", "ngram", "cosine", "frozen_head"]
    # the backend is a group: each composes to its own keyword arguments only
    from hydra.utils import instantiate

    from darling.partition import CrossEncoderClassifier, EmbedOnceClassifier

    assert isinstance(instantiate(human.classifier), EmbedOnceClassifier)
    assert human.classifier.tuned_layers == 2 and "tuned_layers" not in cross.classifier
    clf = instantiate(cross.classifier)
    assert isinstance(clf, CrossEncoderClassifier) and clf.max_length == 256 and clf.both_orders


def test_train_classifier_prints_the_fold_table(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({
        "id": r.id, "labeler": r.labeler, "prompt": r.prompt, "generation_0": r.text_a,
        "generation_1": r.text_b, "similar": r.label}) + "\n" for r in synthetic_rows()))
    out = subprocess.run(
        [sys.executable, "train_classifier.py", f"data.path={path}", "folds.enabled=true",
         "train=false", "folds.backends=[jaccard,ngram]", f"hydra.run.dir={tmp_path / 'h'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "| fold | pairs | jaccard | ngram |" in log and "| labeller min |" in log
    assert not (tmp_path / "pretrained").exists()
