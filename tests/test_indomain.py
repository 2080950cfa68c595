"""In-domain classifier pipeline: mining pairs from a rollout log, verifier and judge labels (the
judge behind a local HTTP server), and train_classifier.py data=rollouts end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from darling.quality.judge import JudgeQuality
from darling.tasks.prompts import PromptRow, builtin_path, load_prompts
from darling.workshop.labelling import (
    LabelCache,
    PairJudge,
    label_pairs,
    parse_verdict,
    verifier_label,
)
from darling.workshop.mining import MinedPair, heldout_categories, mine_pairs

from .chat_server import chat_server
from .test_folds import build_tiny_encoder

ROOT = Path(__file__).resolve().parents[1]
PLANETS = PromptRow(id="p", prompt="Name a planet.", kind="answers",
                    answers=("Mars", "Venus", "Earth"))


def records(groups: int = 3, per_group: int = 6, steps: int = 2) -> list[dict]:
    """Rollouts whose ``class`` is ``k % 2``: in each group 3 + 3 rollouts, two classes."""
    out = []
    for step in range(steps):
        for g in range(groups):
            for k in range(per_group):
                out.append({"step": step, "group_id": g, "prompt_id": f"q{g}",
                            "response": f"s{step} g{g} r{k}", "class": k % 2})
    return out


def group_of(text: str) -> str:
    step, group, _ = text.split()
    return f"{step} {group}"


def test_mining_is_within_groups_balanced_and_seeded():
    rows = records()
    pairs = mine_pairs(rows, max_pairs=20, seed=0)
    assert len(pairs) == 20
    assert sum(p.same_key for p in pairs) == 10  # half of max_pairs of each kind
    for p in pairs:
        assert group_of(p.text_a) == group_of(p.text_b)  # never across groups or steps
        same = int(p.text_a[-1]) % 2 == int(p.text_b[-1]) % 2
        assert p.same_key == same
    assert pairs == mine_pairs(rows, max_pairs=20, seed=0)
    assert pairs != mine_pairs(rows, max_pairs=20, seed=1)
    everything = mine_pairs(rows, max_pairs=10**6, seed=0)
    # per group: C(3,2) * 2 = 6 same-class and 3 * 3 = 9 different-class pairs; 6 groups
    assert sum(p.same_key for p in everything) == 36
    assert sum(not p.same_key for p in everything) == 36  # balanced: 36 of the 54


def test_mining_skips_identical_texts_unlabelled_rows_and_repeats():
    rows = [
        {"step": 0, "group_id": 0, "prompt_id": "q", "response": "a", "class": 0},
        {"step": 0, "group_id": 0, "prompt_id": "q", "response": "a", "class": 0},
        {"step": 0, "group_id": 0, "prompt_id": "q", "response": "b", "class": None},
        {"step": 0, "group_id": 0, "prompt_id": "q", "response": "c", "class": 1},
        {"step": 1, "group_id": 0, "prompt_id": "q", "response": "c", "class": 1},
        {"step": 1, "group_id": 0, "prompt_id": "q", "response": "a", "class": 0},
    ]
    pairs = mine_pairs(rows, max_pairs=10, seed=0)
    assert [(p.text_a, p.text_b) for p in pairs] == [("a", "c")]  # only one kind: all of it


def test_mining_rejects_records_without_fields():
    with pytest.raises(ValueError, match="record 1 lacks"):
        mine_pairs([{"step": 0, "response": "x"}], max_pairs=4, seed=0)


@pytest.mark.parametrize("a, b, label", [
    ("Mars", "I pick Mars!", 1),      # same canonical answer
    ("Mars", "Venus.", 0),            # two different accepted answers
    ("Mars", "Pluto", 0),             # one correct, one not
    ("Pluto", "Ceres", None),         # two wrong answers: the task does not say
])
def test_answer_set_verifier_labels(a, b, label):
    assert verifier_label(a, b, PLANETS) == label


def test_math_verifier_labels():
    row = PromptRow(id="m", prompt="Half of one?", kind="ground_truth", ground_truth="1/2")
    assert verifier_label("\\boxed{0.5}", "so it is 1/2", row) == 1
    assert verifier_label("\\boxed{0.5}", "\\boxed{3}", row) == 0
    assert verifier_label("\\boxed{6/2}", "the answer is 3", row) == 1  # both wrong, equal
    assert verifier_label("a", "b", PromptRow(id="o", prompt="Poem?", kind="open")) is None


JUDGED: list[str] = []
"""Contents the ``judge_url`` stand-in was asked about, in order."""


def _pair_reply(content: str) -> str | None:
    """Fails on any pair mentioning 'fail'; YES when 'cat' appears in both responses."""
    JUDGED.append(content)
    if "fail" in content:
        return None
    return "YES" if content.count("cat") >= 2 else "No."


@pytest.fixture
def judge_url():
    JUDGED.clear()
    with chat_server(_pair_reply) as url:
        yield url


TEMPLATE = "Q: {prompt}\nA: {response_a}\nB: {response_b}\nSame?"


def test_judge_labels_failures_are_missing_and_cache_is_used(judge_url, tmp_path):
    client = JudgeQuality(judge_url, "judge-m", api_key_env=None, retries=2, backoff_s=0.0,
                          max_workers=2)
    pairs = [("a cat", "the cat"), ("a dog", "a fish"), ("fail", "fail too")]
    judge = PairJudge(client, TEMPLATE, LabelCache(tmp_path / "cache.jsonl"))
    assert judge(["pets?"] * 3, pairs) == [1, 0, None]  # a failed call is missing, never 0
    assert len(JUDGED) == 1 + 1 + 2  # the failing pair was retried
    JUDGED.clear()
    again = PairJudge(client, TEMPLATE, LabelCache(tmp_path / "cache.jsonl"))
    assert again(["pets?"] * 3, [(b, a) for a, b in pairs]) == [1, 0, None]  # either order
    assert JUDGED == ["Q: pets?\nA: fail too\nB: fail\nSame?"] * 2  # only the failed one
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 2


def test_judge_template_and_cache_errors(tmp_path):
    with pytest.raises(ValueError, match="response_b"):
        PairJudge(object(), "{prompt} {response_a}")
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"key": "k", "label": 1}\nnot json\n')
    with pytest.raises(ValueError, match="c.jsonl:2"):
        LabelCache(bad)
    assert parse_verdict("Yes") == 1 and parse_verdict("NO") == 0 and parse_verdict("?") is None


def test_label_pairs_counts_and_unknown_prompts():
    mined = [MinedPair(0, 0, "p", "Mars", "Mars, the red one", True),
             MinedPair(0, 0, "p", "Mars", "Venus", False),
             MinedPair(0, 0, "p", "Pluto", "Ceres", False)]
    rows, counts = label_pairs(mined, {"p": PLANETS}, None, source="runs/x")
    assert [r.label for r in rows] == [1, 0] and rows[0].labeler == "verifier"
    assert counts == {"mined": 3, "verifier": 2, "judge": 0, "missing": 1, "equivalent": 1}
    with pytest.raises(ValueError, match="prompt ids"):
        label_pairs(mined, {}, None, source="runs/x")


def write_run(run_dir: Path, prompts: int = 4) -> None:
    """A run directory as train.py leaves it: config.yaml and rollouts/rank0.jsonl, on the
    first ``prompts`` built-in training prompts, with correct answers (some shared, some not) and
    wrong ones."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("data:\n  train_path: null\n")
    logs = []
    for g, row in enumerate(load_prompts(builtin_path("train"))[:prompts]):
        a, b = row.answers[0], row.answers[1]
        texts = [a, f"{a}.", f"It is {a}, I think", b, f"Surely {b}", "zzz qq", "no idea"]
        for k, text in enumerate(texts):
            logs.append({"step": 0, "group_id": g, "prompt_id": row.id, "response": text,
                         "quality": 1.0, "class": k, "diversity": 0.0, "reward": 1.0,
                         "advantage": 0.0})
    (run_dir / "rollouts").mkdir()
    (run_dir / "rollouts" / "rank0.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in logs))


def write_human(path: Path) -> Path:
    """20 human-labelled pairs by two labellers, half similar."""
    path.write_text("".join(json.dumps({
        "id": f"WildChat-{k}", "labeler": ("ann", "bo")[k % 4 // 2], "prompt": f"story {k}",
        "generation_0": f"a long story about a fox number {k} in the woods",
        "generation_1": (f"a long story about a fox number {k} in the forest" if k % 2
                         else f"a poem on the sea and the moon, verse {k}, quiet"),
        "similar": k % 2}) + "\n" for k in range(20)))
    return path


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> str:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_bert"))


def test_train_classifier_from_rollouts_end_to_end(tmp_path, tiny_encoder):
    from darling.partition import load_classifier

    run = tmp_path / "run"
    write_run(run)
    human = write_human(tmp_path / "human.jsonl")
    out = subprocess.run(
        [sys.executable, "train_classifier.py", "data=rollouts", f"data.run={run}",
         f"data.path={human}", "data.max_pairs=40", "data.val_fraction=0.3",
         "folds.enabled=true", "folds.backends=[jaccard,ngram]",
         f"classifier.encoder={tiny_encoder}", "classifier.tuned_layers=0",
         "classifier.max_length=64", f"baseline_encoder={tiny_encoder}",
         "data.holdout_categories=0.5", f"hydra.run.dir={tmp_path / 'h'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    heldout = json.loads((run / "classifier" / "heldout.json").read_text())
    assert set(heldout) == {"this classifier", "shipped default"}
    assert heldout["shipped default"]["groups"] == 2  # one of the two categories: 2 prompts
    assert heldout["shipped default"]["same_pairs"] == 2 * 4  # a, a., It is a; b, Surely b
    # human pairs only are validated (one source here: no source fold); rollout pairs train
    assert "| labeller/ann | 10 |" in log and "| labeller/bo | 10 |" in log
    assert "source/" not in log and "labeller/verifier" not in log
    assert "fold 2/2 of ngram: ROC-AUC " in log  # each fold as it ends
    # each backend's labeller mean without and with the in-domain pairs; lexical ones unchanged
    change = [line for line in log.splitlines() if line.startswith("| jaccard | ")]
    assert len(change) == 1 and change[0].endswith("| +0.000 |"), change
    clf = load_classifier(run / "classifier")
    assert clf.predict_proba([("Mars and more words here", "Venus and other words")]).shape == (1,)
    card = (run / "classifier" / "MODEL_CARD.md").read_text()
    assert "## In-domain pairs" in card and "labelled by the task's verifier" in card
    assert "## Held-out categories" in card and "| shipped default |" in card
    # both classifiers on the human pairs of the validation prompts, the same split as training
    from darling.partition import load_default_classifier
    from darling.partition.calibration import roc_auc
    from darling.workshop.pairs_data import load_pairs, split_by_prompt

    _, val = split_by_prompt(load_pairs(human), 0.3, 0)
    human_val = json.loads((run / "classifier" / "human_val.json").read_text())
    assert human_val["pairs"] == len(val) > 0
    pairs = [(r.text_a, r.text_b) for r in val]
    assert human_val["shipped default"] == pytest.approx(
        roc_auc([r.label for r in val], load_default_classifier().predict_proba(pairs)))
    assert human_val["this classifier"] == pytest.approx(
        roc_auc([r.label for r in val], clf.predict_proba(pairs)))
    assert "## Human validation pairs" in card and "Change: " in card
    assert f"in-domain pairs from the rollouts of {run}" in card and "human pairs" in card
    split = json.loads((run / "classifier" / "config.json").read_text())["meta"]["report"]["split"]
    assert split["calibrated_on"] == "all" and split["calibration_pairs"] == split["val_pairs"]


def test_calibrate_on_in_domain_end_to_end(tmp_path, tiny_encoder):
    """data.calibrate_on=in_domain: the saved threshold is the best F1 on the in-domain
    validation pairs alone, and the model card says so."""
    from darling.partition import load_classifier
    from darling.partition.calibration import best_f1_threshold
    from darling.workshop.pairs_data import split_by_prompt

    run = tmp_path / "run"
    write_run(run, prompts=12)
    human = write_human(tmp_path / "human.jsonl")
    out = subprocess.run(
        [sys.executable, "train_classifier.py", "data=rollouts", f"data.run={run}",
         f"data.path={human}", "data.val_fraction=0.3", "data.calibrate_on=in_domain",
         f"classifier.encoder={tiny_encoder}", "classifier.tuned_layers=0",
         "classifier.max_length=64", f"baseline_encoder={tiny_encoder}",
         f"hydra.run.dir={tmp_path / 'h'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    clf = load_classifier(run / "classifier")
    meta = json.loads((run / "classifier" / "config.json").read_text())["meta"]
    split = meta["report"]["split"]
    assert split["calibrated_on"] == ["judge", "verifier"]
    assert 0 < split["calibration_pairs"] < split["val_pairs"]
    card = (run / "classifier" / "MODEL_CARD.md").read_text()
    assert (f"(best F1 on the {split['calibration_pairs']} validation pairs of judge, verifier)"
            in card)
    # the same pairs rebuilt from the run: the threshold is their best F1
    from omegaconf import OmegaConf

    from darling.workshop.in_domain import IN_DOMAIN, load_data

    data = OmegaConf.load(ROOT / "conf/train_classifier/data/rollouts.yaml").data
    data.run, data.path, data.val_fraction = str(run), str(human), 0.3
    rows, _, _ = load_data(data)
    _, val = split_by_prompt(rows, 0.3, 0)
    chosen = [r for r in val if r.labeler in IN_DOMAIN]
    assert len(chosen) == split["calibration_pairs"]
    expected, _ = best_f1_threshold([r.label for r in chosen],
                                    clf.predict_proba([(r.text_a, r.text_b) for r in chosen]))
    assert clf.threshold_ == pytest.approx(expected, abs=1e-6)


def test_heldout_categories_are_seeded_and_bounded():
    cats = [f"c{k}" for k in range(9)] * 2
    held = heldout_categories(cats, 1 / 3, seed=0)
    assert len(held) == 3 and held == heldout_categories(cats, 1 / 3, seed=0)
    assert held != heldout_categories(cats, 1 / 3, seed=1)
    assert heldout_categories(cats, 0.0, 0) == set()
    assert len(heldout_categories(cats, 0.99, 0)) == 8  # never every category
    with pytest.raises(ValueError, match="holdout_categories"):
        heldout_categories(cats, 1.0, 0)
    with pytest.raises(ValueError, match="two categories"):
        heldout_categories(["only"], 0.5, 0)


@pytest.mark.parametrize("partition, split", [("exact", 1.0), ("answer_set", 0.0)])
def test_heldout_agreement_against_the_verifier(tmp_path, partition, split):
    """On write_run's groups: exact-text classes split every same-answer pair of correct
    rollouts, answer-set classes none; neither merges different answers."""
    from darling.partition.keyed import AnswerSetPartition, ExactTextPartition
    from darling.workshop.in_domain import InDomain, heldout_agreement, read_rollouts

    write_run(tmp_path / "run")
    records = read_rollouts(tmp_path / "run")
    prompts = {row.id: row for row in load_prompts(builtin_path("train"))}
    classifier = {"exact": ExactTextPartition, "answer_set": AnswerSetPartition}[partition]()
    result = heldout_agreement(classifier, InDomain([], {}, records, prompts), 3, seed=0)
    assert result["groups"] == 3 and result["same_pairs"] == 3 * 4
    assert result["false_split"] == split and result["false_merge"] == 0.0


@pytest.mark.slow
def test_tiny_training_run_to_in_domain_classifier(tmp_path, tiny_encoder):
    """train.py on the tiny model (answer-set task, so the log holds real rows), then
    train_classifier.py data=rollouts on its run directory, labels from a judge stand-in (a
    random model never answers correctly, so the verifier leaves every pair to the judge)."""
    from darling.partition import load_classifier

    from .conftest import TINY

    run = tmp_path / "run"
    tiny = [o for o in TINY if not o.startswith(("classifier=", "quality"))]
    out = subprocess.run(
        [sys.executable, "train.py", *tiny, "classifier=answer_set", "quality=answer_set",
         f"hydra.run.dir={run}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert list((run / "rollouts").glob("*.jsonl"))
    # a judge stand-in for random-model text: YES when the prompt content has even length
    with chat_server(lambda content: "YES" if len(content) % 2 == 0 else "NO") as judge:
        out = subprocess.run(
            [sys.executable, "train_classifier.py", "data=rollouts", f"data.run={run}",
             f"data.path={write_human(tmp_path / 'human.jsonl')}", "data.max_pairs=16",
             "data.val_fraction=0.3",
             f"data.judge.base_url={judge}",
             "data.judge.model=stand-in", "data.judge.api_key_env=null",
             f"classifier.encoder={tiny_encoder}", "classifier.tuned_layers=0",
             "classifier.max_length=64", f"baseline_encoder={tiny_encoder}",
             f"hydra.run.dir={tmp_path / 'h'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
    assert out.returncode == 0, out.stderr[-3000:]
    load_classifier(run / "classifier")
    card = (run / "classifier" / "MODEL_CARD.md").read_text()
    judged = int(card.split(" by the LM judge (stand-in)")[0].rsplit(", ", 1)[1])
    assert judged > 0  # the tiny run's own pairs were labelled and trained on
    assert (run / "pair_labels.jsonl").is_file()  # the label cache


def test_calibrate_on_is_validated():
    from omegaconf import OmegaConf

    from darling.workshop.in_domain import IN_DOMAIN, calibration_labelers

    def data(source, choice):
        return OmegaConf.create({"source": source, "calibrate_on": choice})

    assert calibration_labelers(data("rollouts", "all")) is None
    assert calibration_labelers(data("rollouts", "in_domain")) == IN_DOMAIN
    assert calibration_labelers(OmegaConf.create({"source": "human"})) is None
    with pytest.raises(ValueError, match="choose all or in_domain"):
        calibration_labelers(data("rollouts", "human"))
    with pytest.raises(ValueError, match="use data=rollouts"):
        calibration_labelers(data("human", "in_domain"))
