"""Pair classifiers: symmetry, persistence, error messages, edge-case texts, golden answers.

Model backends run on a tiny randomly initialised BERT built from a config in code (with the
all-MiniLM-L6-v2 tokenizer), so these tests take seconds; only the shipped-default test and the
pooling reference load the real MiniLM.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from darling.partition import (
    DEFAULT_CLASSIFIER_DIR,
    CrossEncoderClassifier,
    EmbedOnceClassifier,
    JaccardClassifier,
    NgramOverlapClassifier,
    PairClassifier,
    load_classifier,
    load_default_classifier,
)
from darling.partition.base import NotFittedError, register_backend
from darling.partition.encoder import chunk_token_ids, default_encoder_path
from darling.partition.keyed import MathAnswerPartition
from darling.tasks.answers import canonical_math_answer, math_final_answer

LONG = " ".join(f"word{k % 97} and" for k in range(5000))  # 10,000 words
TEXTS = [
    "The capital of France is Paris, a city on the Seine with about two million people.",
    "Paris is the capital of France; it lies on the river Seine and has two million people.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in plants.",
    "Once upon a time a small robot learned to paint the sunrise over the quiet harbour.",
    "Le café est très chaud ce matin, dit Zoë, et les croissants sont délicieux aujourd'hui. 你好",
    "   \n\t  ",
    "",
    LONG,
]
PAIRS = [(TEXTS[i], TEXTS[j]) for i in range(len(TEXTS)) for j in range(len(TEXTS)) if i != j]
FIT_PAIRS = [(TEXTS[0], TEXTS[1]), (TEXTS[0], TEXTS[2]), (TEXTS[1], TEXTS[3]),
             (TEXTS[2], TEXTS[2] + " Indeed."), (TEXTS[3], TEXTS[4]),
             (TEXTS[4], TEXTS[4] + " Oui.")]
FIT_LABELS = [1, 0, 0, 1, 0, 1]


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random BERT with the MiniLM tokenizer, saved once per session."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(default_encoder_path()).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def fitted_embed_once(tiny_encoder) -> EmbedOnceClassifier:
    clf = EmbedOnceClassifier(encoder=tiny_encoder, max_length=64, tuned_layers=1, epochs=2,
                              batch_pairs=3, seed=0)
    return clf.fit(FIT_PAIRS, FIT_LABELS)


@pytest.fixture(scope="session")
def cross_encoder(tiny_encoder) -> CrossEncoderClassifier:
    clf = CrossEncoderClassifier(model=tiny_encoder, max_length=64, epochs=1, batch_size=4)
    return clf.fit(FIT_PAIRS, FIT_LABELS)


@pytest.fixture(params=["ngram", "jaccard", "embed_once", "cross_encoder"])
def classifier(request) -> PairClassifier:
    return {
        "ngram": lambda: NgramOverlapClassifier().fit(FIT_PAIRS, FIT_LABELS),
        "jaccard": lambda: JaccardClassifier().fit(FIT_PAIRS, FIT_LABELS),
        "embed_once": lambda: request.getfixturevalue("fitted_embed_once"),
        "cross_encoder": lambda: request.getfixturevalue("cross_encoder"),
    }[request.param]()


def test_symmetric_and_valid_on_edge_texts(classifier):
    """p(a, b) == p(b, a) exactly; empty, whitespace-only, non-ASCII and 10,000-word texts work."""
    p = classifier.predict_proba(PAIRS)
    p_swapped = classifier.predict_proba([(b, a) for a, b in PAIRS])
    assert p.shape == (len(PAIRS),) and p.dtype == np.float64
    np.testing.assert_array_equal(p, p_swapped)
    assert np.all((p >= 0) & (p <= 1))


def test_save_load_round_trip(classifier, tmp_path):
    classifier.threshold_ = 0.37
    loaded = load_classifier(classifier.save(tmp_path / "clf"))
    assert type(loaded) is type(classifier) and loaded.threshold_ == 0.37
    np.testing.assert_array_equal(loaded.predict_proba(PAIRS), classifier.predict_proba(PAIRS))


def test_fit_changes_embed_once_and_cross_encoder(tiny_encoder, fitted_embed_once, tmp_path):
    fresh = EmbedOnceClassifier(encoder=tiny_encoder, max_length=64, tuned_layers=1)
    assert not torch.allclose(fresh.embed(TEXTS[:3]), fitted_embed_once.embed(TEXTS[:3]))
    params = {"model": tiny_encoder, "max_length": 64, "batch_size": 4}
    before = CrossEncoderClassifier(**params, epochs=0).fit(FIT_PAIRS, FIT_LABELS)  # same head
    after = CrossEncoderClassifier(**params, epochs=1).fit(FIT_PAIRS, FIT_LABELS)
    assert not np.allclose(before.predict_proba(FIT_PAIRS), after.predict_proba(FIT_PAIRS))


def test_embed_once_encodes_each_distinct_text_once(fitted_embed_once, monkeypatch):
    seen = []
    original = EmbedOnceClassifier.embed

    def spy(self, texts):
        seen.append(list(texts))
        return original(self, texts)

    monkeypatch.setattr(EmbedOnceClassifier, "embed", spy)
    texts = TEXTS[:4] + [TEXTS[0]]  # a duplicate string at another index
    index = np.array([(i, j) for i in range(5) for j in range(i + 1, 5)])
    fitted_embed_once.predict_proba_indexed(texts, index)
    assert len(seen) == 1 and sorted(seen[0]) == sorted(set(TEXTS[:4]))


def test_chunking_covers_long_texts(fitted_embed_once):
    # 7 pieces, windows of 4 - 2 = 2 pieces: [5,6] [7,8] [9,10] [11]
    assert chunk_token_ids(list(range(5, 12)), 4, 1, 2) == [
        [1, 5, 6, 2], [1, 7, 8, 2], [1, 9, 10, 2], [1, 11, 2]]
    assert chunk_token_ids([], 4, 1, 2) == [[1, 2]]
    assert chunk_token_ids(list(range(5, 12)), 4, 1, 2, truncate=True) == [[1, 5, 6, 2]]
    windows, owner = fitted_embed_once.windows([LONG, "short text"])
    assert owner.count(0) > 100 and owner.count(1) == 1  # 10,000 words -> many 64-piece windows
    assert max(len(w) for w in windows) <= 64
    head = EmbedOnceClassifier(encoder=fitted_embed_once.encoder, max_length=64)
    tail_changed = LONG + " completely different ending " * 50
    assert not torch.allclose(head.embed([LONG]), head.embed([tail_changed]))  # tail is seen


def test_single_window_pooling_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    texts = ["A short sentence about cats.", "Another one, about the stock market."]
    reference = SentenceTransformer(default_encoder_path(), device="cpu").encode(
        texts, normalize_embeddings=True, convert_to_tensor=True)
    ours = EmbedOnceClassifier(tuned_layers=0).embed(texts)
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-5, rtol=0)


def test_cross_encoder_tokenises_pairs_without_rewriting(cross_encoder, tiny_encoder):
    from transformers import AutoTokenizer

    batch = cross_encoder.encode_pairs(["a  b\n\nc " + LONG], ["d"])
    ids = batch["input_ids"][0].tolist()
    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    assert len(ids) == 64 and ids[0] == tok.cls_token_id and ids.count(tok.sep_token_id) == 2
    assert ids[-3:] == [tok.sep_token_id, tok.convert_tokens_to_ids("d"), tok.sep_token_id]


def test_load_missing_and_corrupt_dirs_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_classifier(tmp_path / "nowhere")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        load_classifier(corrupt)
    bad_weights = JaccardClassifier().save(tmp_path / "bad_weights")
    (bad_weights / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="bad_weights"):
        load_classifier(bad_weights)
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text('{"backend": "nope", "threshold": 0.5}')
    with pytest.raises(ValueError, match="nope"):
        load_classifier(unknown)


@register_backend
class _NaNStub(PairClassifier):
    backend = "_test_nan"
    threshold_ = 0.5

    def _score_indexed(self, texts, index_pairs):
        return np.full(len(index_pairs), np.nan)


def test_nan_scores_raise():
    with pytest.raises(ValueError, match="NaN"):
        _NaNStub().predict_proba([(TEXTS[0], TEXTS[2])])


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (r"so the total is \boxed{0.50}", "The answer is 1/2.", True),  # 0.50 = 1/2
        (r"\boxed{\frac{1}{2}}", r"\boxed{0.5}", True),
        ("We get 1,000 apples.", r"\boxed{1000}", True),  # thousands comma
        ("Step 1: 3 + 4 = 7\nSo the answer is 7.", "7", True),  # last number
        (r"\boxed{\text{Paris}}", "Answer: paris.", True),  # no number: last line, normalised
        (r"\boxed{x^2 + 1}", r"\boxed{x^2+1}", False),  # no symbolic equality
        ("2 + 2 = 4", "2 + 2 = 5", False),
        (r"\boxed{-3}", "-3.0", True),
    ],
)
def test_math_answer_partition_golden(a, b, same):
    labels, metrics = MathAnswerPartition().labels([a, b], ["g", "g"], None)
    assert bool(labels[0] == labels[1]) is same and metrics == {}


def test_answer_normalisation():
    assert canonical_math_answer(" 0.50. ") == Fraction(1, 2)
    assert canonical_math_answer("Final answer: Blue Whale!") == "blue whale"
    assert math_final_answer(r"\boxed{\frac{3}{4}} then \boxed{{2}}") == "{2}"
    assert math_final_answer("") == ""


def test_lexical_thresholds_are_fitted():
    clf = JaccardClassifier().fit(FIT_PAIRS, FIT_LABELS)
    assert 0.0 <= clf.threshold_ < 1.0
    same = ("a b c d e f", "a b c d e f")
    assert NgramOverlapClassifier().predict_proba([same]).tolist() == [1.0]


def test_import_is_cheap_and_pure():
    """The partition core imports without torch, transformers, lightning, hydra, vllm or wandb."""
    code = (
        "import sys\n"
        "for m in ('lightning', 'hydra', 'vllm', 'wandb'):\n"
        "    sys.modules[m] = None\n"
        "import darling.partition as p\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
        "import darling.partition.embed_once, darling.partition.cross_encoder\n"
        "import darling.partition.lexical, darling.workshop.training\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_classifier_is_sensible():
    clf = load_default_classifier()
    assert isinstance(clf, EmbedOnceClassifier)
    story = ("Once upon a time, a lonely lighthouse keeper found a message in a bottle. It was "
             "written by a girl across the sea, and for years they wrote letters to each other "
             "until one day she sailed to the lighthouse to meet him.")
    same = (story, story.replace("Once upon a time", "Long ago").replace("lonely", "solitary"))
    different = (story, "To make a simple tomato sauce, heat olive oil, add chopped garlic and "
                 "onions, cook until soft, add crushed tomatoes, salt and basil, and simmer "
                 "for twenty minutes while stirring occasionally.")
    p_identical, p_same, p_diff = clf.predict_proba([(story, story), same, different])
    assert p_identical > 0.9 and p_same > clf.threshold_ >= p_diff
    assert 0.0 < clf.threshold_ < 1.0


def test_length_batches_keep_padding_low():
    from darling.partition.encoder import length_batches

    lengths = [256] * 8 + [70, 72, 75, 80, 66, 90, 71, 74]
    batches = length_batches(lengths, batch_size=16)
    assert sorted(k for b in batches for k in b) == list(range(16))  # every window once
    for batch in batches:
        padded = len(batch) * max(lengths[k] for k in batch)
        assert padded - sum(lengths[k] for k in batch) <= 0.25 * padded
    assert all(len(b) <= 3 for b in length_batches(lengths, batch_size=3))


def test_folder_without_weights_is_refused_not_untrained(fitted_embed_once, cross_encoder,
                                                         tmp_path):
    for name, clf in (("embed", fitted_embed_once), ("cross", cross_encoder)):
        saved = clf.save(tmp_path / name)
        (saved / "model.safetensors").unlink()
        with pytest.raises(FileNotFoundError, match="model.safetensors"):
            load_classifier(saved)


def test_trust_remote_code_only_from_the_users_config(cross_encoder, tmp_path):
    saved = cross_encoder.save(tmp_path / "downloaded")
    config = json.loads((saved / "config.json").read_text())
    config["params"]["trust_remote_code"] = True  # a downloaded folder asking to run its code
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_classifier(saved)
    assert load_classifier(saved, trust_remote_code=True).trust_remote_code is True
    # a folder that does not ask gets the caller's value (default off), never its own
    config["params"]["trust_remote_code"] = False
    (saved / "config.json").write_text(json.dumps(config))
    assert load_classifier(saved).trust_remote_code is False


# -- the estimator contract (scikit-learn's) -----------------------------------------------------
def _backends(tiny_encoder) -> list[tuple[type[PairClassifier], dict]]:
    """Every backend with non-default values for some of its parameters."""
    return [
        (NgramOverlapClassifier, {"n": 3, "threshold": 0.2}),
        (JaccardClassifier, {"threshold": 0.3}),
        (EmbedOnceClassifier, {"encoder": tiny_encoder, "max_length": 64, "tuned_layers": 1,
                               "epochs": 2, "batch_pairs": 3, "threshold": 0.4}),
        (CrossEncoderClassifier, {"model": tiny_encoder, "max_length": 64, "epochs": 1,
                                  "batch_size": 4, "threshold": 0.6}),
    ]


def test_init_only_stores_and_params_are_the_signature(tiny_encoder):
    import inspect

    for cls, kwargs in _backends(tiny_encoder):
        clf = cls(**kwargs)
        signature = inspect.signature(cls.__init__).parameters
        defaults = {k: p.default for k, p in signature.items() if k != "self"}
        assert clf.get_params() == {**defaults, **kwargs}, cls
        assert vars(clf) == clf.get_params(), cls  # nothing computed, nothing learned in __init__
        clone = type(clf)(**clf.get_params())
        assert type(clone) is cls and vars(clone) == vars(clf)
        assert repr(clf).startswith(f"{cls.__name__}(") and "threshold=" in repr(clf)


def test_set_params_round_trip_and_unknown_names(tiny_encoder):
    for cls, kwargs in _backends(tiny_encoder):
        clf = cls()
        assert clf.set_params(**kwargs) is clf
        assert clf.get_params() == cls(**kwargs).get_params()
        with pytest.raises(ValueError, match="no parameter.*threshold_"):
            clf.set_params(threshold_=0.9)  # learned attributes are not parameters
        assert clf.set_params(threshold=0.77).threshold == 0.77


def test_learned_attributes_end_in_underscore_and_clone_is_unfitted(classifier):
    params = classifier.get_params()
    learned = set(vars(classifier)) - set(params)
    public = {name for name in learned if not name.startswith("_")}
    assert all(name.endswith("_") for name in public), public  # private caches aside
    clone = type(classifier)(**params)
    assert vars(clone) == params


@pytest.mark.parametrize("cls", [EmbedOnceClassifier, CrossEncoderClassifier])
def test_unfitted_model_backends_refuse_to_predict(cls, tiny_encoder, tmp_path):
    key = "encoder" if cls is EmbedOnceClassifier else "model"
    clf = cls(**{key: tiny_encoder}, max_length=64)
    for call in (lambda: clf.predict_proba(FIT_PAIRS), lambda: clf.predict(FIT_PAIRS),
                 lambda: clf.labels(TEXTS[:3], ["g"] * 3), lambda: clf.save(tmp_path / "x"),
                 lambda: clf.calibrate(FIT_PAIRS, FIT_LABELS)):
        with pytest.raises(NotFittedError, match=f"{cls.__name__} is not fitted.*fit"):
            call()
    assert isinstance(NotFittedError(), ValueError) and isinstance(NotFittedError(), AttributeError)
    assert not (tmp_path / "x").exists()


def test_unfitted_lexical_baselines_use_their_fixed_threshold(tmp_path):
    """Documented exception: parameter-free baselines need no fit; threshold_ = threshold."""
    clf = NgramOverlapClassifier(n=1, threshold=0.4)
    # 1-gram Jaccard: {a b c d e f} vs {a b c g h i} -> 3/9 = 0.33 <= 0.4
    pair = ("a b c d e f", "a b c g h i")
    assert clf.predict_proba([pair]).tolist() == [pytest.approx(1 / 3)]
    assert clf.threshold_ == 0.4 and clf.predict([pair]).tolist() == [False]
    assert NgramOverlapClassifier(n=1, threshold=0.3).predict([pair]).tolist() == [True]
    labels, _ = clf.labels([pair[0], pair[1], pair[0] + " again"], ["g"] * 3)
    assert labels.tolist() == [0, 1, 0]  # 6/7 shared words with the first
    loaded = load_classifier(clf.save(tmp_path / "ngram"))
    assert loaded.get_params() == clf.get_params() and loaded.threshold_ == 0.4
    fitted = JaccardClassifier(threshold=0.9).fit(FIT_PAIRS, FIT_LABELS)
    assert "threshold_" in vars(fitted) and fitted.threshold_ != 0.9 and fitted.threshold == 0.9


def test_fit_sets_threshold_from_the_parameter_and_calibrate_replaces_it(tiny_encoder):
    clf = EmbedOnceClassifier(encoder=tiny_encoder, max_length=64, tuned_layers=0, threshold=0.42)
    assert clf.fit(FIT_PAIRS, FIT_LABELS).threshold_ == 0.42
    proba = clf.calibrate(FIT_PAIRS, FIT_LABELS)
    np.testing.assert_array_equal(proba, clf.predict_proba(FIT_PAIRS))
    from darling.partition.calibration import best_f1_threshold

    assert clf.threshold_ == best_f1_threshold(FIT_LABELS, proba)[0]


def test_fit_head_on_precomputed_features_matches_predict_proba(tiny_encoder):
    """The public head API (bench/partition_eval.py --lolo) scores as predict_proba does."""
    from darling.partition.embed_once import pair_lexical_features

    texts = [TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[3]]  # long enough: no short-answer rule
    index = np.array([(0, 1), (0, 2), (1, 3), (2, 3)])
    clf = EmbedOnceClassifier(encoder=tiny_encoder, max_length=64, tuned_layers=0)
    emb = clf.embed(texts)
    cosine = (emb[index[:, 0]] * emb[index[:, 1]]).sum(1)
    lexical = pair_lexical_features(texts, index)
    assert clf.fit_head(cosine, lexical, [1, 0, 0, 1]) is clf and clf.threshold_ == 0.5
    np.testing.assert_allclose(clf.head_proba(cosine, lexical),
                               clf.predict_proba_indexed(texts, index), rtol=0, atol=1e-6)
    # mean, scale and weight per feature, one bias
    assert clf.parameter_counts()["stored"] == 3 * len(clf.feature_mean_) + 1


def _reference_default_proba(pairs) -> np.ndarray:
    """p of the shipped default recomputed from its files alone, without the classifier class:
    all-MiniLM-L6-v2 with the saved tuned layers (Hugging Face's own forward, one window at a
    time), windows of 254 pieces mean-pooled over all tokens, the saved head, the short-answer
    rule first."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from darling.partition.base import short_answer_rule
    from darling.partition.embed_once import pair_lexical_features

    state = load_file(str(DEFAULT_CLASSIFIER_DIR / "model.safetensors"))
    tok = AutoTokenizer.from_pretrained(default_encoder_path())
    model = AutoModel.from_pretrained(default_encoder_path()).eval()
    tuned = {k[len("tuned."):]: v.float() for k, v in state.items() if k.startswith("tuned.")}
    assert tuned and not set(tuned) - set(model.state_dict())
    model.load_state_dict(tuned, strict=False)

    def embed(text: str) -> torch.Tensor:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        total, count = torch.zeros(model.config.hidden_size), 0
        for start in range(0, max(len(ids), 1), 254):
            window = [tok.cls_token_id, *ids[start : start + 254], tok.sep_token_id]
            with torch.no_grad():
                states = model(input_ids=torch.tensor([window])).last_hidden_state[0]
            total, count = total + states.sum(0), count + len(window)
        return torch.nn.functional.normalize(total / count, dim=0)

    out = []
    for a, b in pairs:
        rule = short_answer_rule(a, b)
        if rule is not None:
            out.append(float(rule))
            continue
        features = torch.cat([(embed(a) @ embed(b))[None],
                              pair_lexical_features([a, b], np.array([[0, 1]]))[0]])
        z = (features - state["head.feature_mean"]) / state["head.feature_scale"]
        out.append(float(torch.sigmoid(z @ state["head.weight"] + state["head.bias"])))
    return np.asarray(out)


def test_shipped_default_scores_as_its_saved_files_say():
    """The refactored loader gives the probabilities the saved weights define (reference built
    from the files, not from EmbedOnceClassifier), and the saved threshold."""
    story = ("Once upon a time, a lonely lighthouse keeper found a message in a bottle. It was "
             "written by a girl across the sea, and for years they wrote letters to each other "
             "until one day she sailed to the lighthouse to meet him.")
    sauce = ("To make a simple tomato sauce, heat olive oil, add chopped garlic and onions, cook "
             "until soft, add crushed tomatoes, salt and basil, and simmer for twenty minutes.")
    pairs = [
        (story, story.replace("lonely", "solitary")),
        (story, sauce),
        (" ".join([story] * 12), story),  # about 560 words: several windows
        ("Paris is the capital of France and its largest city.", "The capital of France is Paris."),
        ("Lima", "lima."),  # short-answer rule
    ]
    clf = load_default_classifier()
    config = json.loads((DEFAULT_CLASSIFIER_DIR / "config.json").read_text())
    assert clf.threshold_ == config["threshold"] == 0.4995253086090088
    proba = clf.predict_proba(pairs)
    # golden: main at 2a057df (before the estimator refactor), one torch thread
    golden = [0.9877875447273254, 0.013377131894230843, 0.9514414668083191, 0.8110246658325195, 1.0]
    np.testing.assert_allclose(proba, golden, rtol=0, atol=1e-6)
    np.testing.assert_allclose(proba, _reference_default_proba(pairs), rtol=0, atol=1e-5)


def test_train_and_calibrate_then_save_with_card(tiny_encoder, tmp_path):
    """The train_classifier.py procedure through the public API only: fit, calibrate on held-out
    prompts, save with the card; the saved folder loads to the same scores and threshold."""
    from darling.workshop.pairs_data import PairRow
    from darling.workshop.training import save_with_card, train_and_calibrate

    rows = [PairRow(prompt=f"p{k % 6}", text_a=a, text_b=b, label=y, labeler=f"l{k % 2}")
            for k, ((a, b), y) in enumerate(zip(FIT_PAIRS * 4, FIT_LABELS * 4, strict=True))]
    clf = EmbedOnceClassifier(encoder=tiny_encoder, max_length=64, tuned_layers=1, epochs=1)
    clf, report = train_and_calibrate(rows, clf, val_fraction=0.5, seed=0,
                                      encoder_for_baseline=tiny_encoder)
    assert report["val"]["threshold"] == clf.threshold_ != clf.threshold
    out = save_with_card(clf, report, tmp_path / "clf", "python train_classifier.py", data="x")
    loaded = load_classifier(out)
    assert loaded.threshold_ == clf.threshold_ and loaded.get_params() == clf.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(PAIRS), clf.predict_proba(PAIRS))
    saved = json.loads((out / "config.json").read_text())["meta"]["report"]["parameters"]
    assert saved == clf.parameter_counts() and saved["stored"] < saved["inference"]
    assert "## Validation metrics" in (out / "MODEL_CARD.md").read_text()


def test_train_and_calibrate_on_some_labellers(tiny_encoder):
    """``calibrate_labelers``: the threshold is the best F1 on those labellers' validation pairs
    alone, the report still covers every validation pair, and a choice without both labels is
    refused."""
    from darling.partition.calibration import best_f1_threshold, roc_auc
    from darling.workshop.pairs_data import PairRow, split_by_prompt
    from darling.workshop.training import train_and_calibrate

    rows = [PairRow(prompt=f"p{k % 6}", text_a=a, text_b=b, label=y, labeler=f"l{k % 2}")
            for k, ((a, b), y) in enumerate(zip(FIT_PAIRS * 4, FIT_LABELS * 4, strict=True))]
    _, val = split_by_prompt(rows, 0.5, 0)
    chosen = [r for r in val if r.labeler == "l1"]
    assert 0 < sum(r.label for r in chosen) < len(chosen) < len(val)

    def fresh():
        return EmbedOnceClassifier(encoder=tiny_encoder, max_length=64, tuned_layers=0)

    clf, report = train_and_calibrate(rows, fresh(), 0.5, 0, encoder_for_baseline=tiny_encoder,
                                      calibrate_labelers={"l1"})
    expected, _ = best_f1_threshold([r.label for r in chosen],
                                    clf.predict_proba([(r.text_a, r.text_b) for r in chosen]))
    assert clf.threshold_ == expected == report["val"]["threshold"]
    assert report["split"]["calibrated_on"] == ["l1"]
    assert report["split"]["calibration_pairs"] == len(chosen)
    every = clf.predict_proba([(r.text_a, r.text_b) for r in val])  # measured on all of them
    assert report["val"]["roc_auc"] == pytest.approx(roc_auc([r.label for r in val], every))
    _, everyone = train_and_calibrate(rows, fresh(), 0.5, 0, encoder_for_baseline=tiny_encoder)
    assert everyone["split"]["calibrated_on"] == "all"
    assert everyone["split"]["calibration_pairs"] == len(val)
    with pytest.raises(ValueError, match="need both labels"):
        train_and_calibrate(rows, fresh(), 0.5, 0, calibrate_labelers={"nobody"})
