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
    CrossEncoderClassifier,
    EmbedOnceClassifier,
    JaccardClassifier,
    NgramOverlapClassifier,
    PairClassifier,
    load_classifier,
    load_default_classifier,
)
from darling.partition.base import register_backend
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
    return CrossEncoderClassifier(model=tiny_encoder, max_length=64, epochs=1, batch_size=4)


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
    fresh._load_encoder()
    tuned = fitted_embed_once._model.encoder.layer[-1].attention.self.query.weight
    assert not torch.equal(tuned, fresh._model.encoder.layer[-1].attention.self.query.weight)
    cross = CrossEncoderClassifier(model=tiny_encoder, max_length=64, epochs=1, batch_size=4)
    before = cross.predict_proba(FIT_PAIRS)
    after = cross.fit(FIT_PAIRS, FIT_LABELS).predict_proba(FIT_PAIRS)
    assert not np.allclose(before, after)


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
    windows, owner = fitted_embed_once._windows([LONG, "short text"])
    assert owner.count(0) > 100 and owner.count(1) == 1  # 10,000 words -> many 64-piece windows
    assert max(len(w) for w in windows) <= 64
    head = EmbedOnceClassifier(encoder=fitted_embed_once.encoder, max_length=64)
    head._load_encoder()
    tail_changed = LONG + " completely different ending " * 50
    assert not torch.allclose(head.embed([LONG]), head.embed([tail_changed]))  # tail is seen


def test_single_window_pooling_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    texts = ["A short sentence about cats.", "Another one, about the stock market."]
    reference = SentenceTransformer(default_encoder_path(), device="cpu").encode(
        texts, normalize_embeddings=True, convert_to_tensor=True)
    ours = EmbedOnceClassifier(tuned_layers=0).embed(texts)
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-5, rtol=0)


def test_cross_encoder_tokenises_pairs_without_rewriting(cross_encoder):
    cross_encoder._load()
    batch = cross_encoder.encode_pairs(["a  b\n\nc " + LONG], ["d"])
    ids = batch["input_ids"][0].tolist()
    tok = cross_encoder._tokenizer
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
        "import darling.partition.lexical, darling.partition.training\n"
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
