"""The hub classifier configs (issue 12, item 4) on small models of the same architectures.

No hub is reachable here, so NoveltyBench's DeBERTa-v3 classifier and the DARLING authors'
ModernBERT classifier are stood in for by a 2-layer DeBERTa-v2 and a 2-layer ModernBERT built in
code, each saved as a trained two-class sequence classifier next to the all-MiniLM-L6-v2
(WordPiece) tokenizer. The tests check what the configs promise: the input format, one-order
scoring, the decision threshold, refusal of a bare encoder, and a clear error for a missing path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from darling.partition.cross_encoder import CrossEncoderClassifier, pretrained_cross_encoder
from darling.partition.encoder import default_encoder_path
from darling.train.validation import validate
from tests.conftest import TINY

A = "The capital of France is Paris, a city on the Seine with about two million people."
B = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in plants."
C = "Once upon a time a small robot learned to paint the sunrise over the quiet harbour."


def _save_classifier(path, config, head=True):
    """Save a random two-class classifier of ``config``'s architecture with the MiniLM tokenizer;
    ``head=False`` saves the bare encoder (no classification weights)."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    config.num_labels = 2
    model = (AutoModelForSequenceClassification if head else AutoModel).from_config(config)
    with torch.no_grad():  # spread the logits so probabilities differ between pairs
        for p in model.parameters():
            p.mul_(4.0)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(default_encoder_path()).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def deberta(tmp_path_factory) -> str:
    from transformers import DebertaV2Config

    config = DebertaV2Config(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, relative_attention=True,
        position_buckets=64, pos_att_type=["p2c", "c2p"], type_vocab_size=2,
        position_biased_input=False,  # as deberta-v3: relative positions only
    )
    return _save_classifier(tmp_path_factory.mktemp("deberta"), config)


@pytest.fixture(scope="module")
def modernbert(tmp_path_factory) -> str:
    from transformers import ModernBertConfig

    config = ModernBertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, pad_token_id=0,
        cls_token_id=101, sep_token_id=102, bos_token_id=101, eos_token_id=102,
    )
    return _save_classifier(tmp_path_factory.mktemp("modernbert"), config)


def _hub_config(compose_cfg, name, path):
    cfg = compose_cfg(*TINY, f"classifier={name}", f"classifier.model={path}",
                      f"classifier.tokenizer={path}")
    validate(cfg)
    return cfg.classifier


def _manual_proba(path, first, second, segment_tokens, token_types):
    """softmax(f(first, second))_1 from ids built by hand: [CLS] a[:L] [SEP] b[:L] [SEP]."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    net = AutoModelForSequenceClassification.from_pretrained(path).eval()
    a = tok.encode(first, add_special_tokens=False)[:segment_tokens]
    b = tok.encode(second, add_special_tokens=False)[:segment_tokens]
    ids = [tok.cls_token_id, *a, tok.sep_token_id, *b, tok.sep_token_id]
    inputs = {"input_ids": torch.tensor([ids])}
    if token_types:
        inputs["token_type_ids"] = torch.tensor([[0] * (len(a) + 2) + [1] * (len(b) + 1)])
    with torch.no_grad():
        return torch.softmax(net(**inputs).logits.float(), -1)[0, 1].item()


def test_noveltybench_config_scores_as_noveltybench_does(compose_cfg, deberta):
    clf = instantiate(_hub_config(compose_cfg, "noveltybench_deberta", deberta))
    assert clf.threshold_ == pytest.approx(0.102) and not clf.both_orders
    long_a = A + " " + " ".join(f"extra{k}" for k in range(600))  # over the 128-token segment
    got = clf.predict_proba([(long_a, B), (B, long_a), (A, C)])
    # NoveltyBench's classifier_score cuts each response to 128 tokens (src/partition.py)
    want = [_manual_proba(deberta, x, y, 128, token_types=True)
            for x, y in ((long_a, B), (B, long_a), (A, C))]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert abs(got[0] - got[1]) > 1e-4  # one order: (a, b) and (b, a) are scored apart
    batch = clf.encode_pairs([long_a], [B])
    types = batch["token_type_ids"][0].tolist()
    assert types.index(1) == 128 + 2  # [CLS] a[:128] [SEP], then b's segment


def test_token_types_change_the_deberta_score(deberta):
    """The 0/1 token types reach the model (a model with type embeddings scores differently
    without them), so the test above would catch a format that dropped them."""
    with_types = _manual_proba(deberta, A, C, 512, token_types=True)
    without = _manual_proba(deberta, A, C, 512, token_types=False)
    assert abs(with_types - without) > 1e-4


def test_darling_modernbert_config_and_partition(compose_cfg, modernbert):
    clf = instantiate(_hub_config(compose_cfg, "darling_modernbert", modernbert))
    assert clf.threshold_ == pytest.approx(0.32)
    batch = clf.encode_pairs([A], [B])
    assert "token_type_ids" not in batch  # ModernBERT's forward takes none
    got = clf.predict_proba([(A, B), (C, A)])
    want = [_manual_proba(modernbert, A, B, 4094, token_types=False),
            _manual_proba(modernbert, C, A, 4094, token_types=False)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the earlier rollout of a group comes first; classes follow p > 0.32
    texts = [A, B, C, A + " Indeed."]
    labels, _ = clf.labels(texts, [0, 0, 0, 0])
    p = clf.predict_proba([(texts[i], texts[j]) for i in range(4) for j in range(i + 1, 4)])
    linked = {(i, j) for k, (i, j) in enumerate(
        (i, j) for i in range(4) for j in range(i + 1, 4)) if p[k] > 0.32}
    for i, j in linked:
        assert labels[i] == labels[j]
    assert len(set(labels.tolist())) >= 4 - len(linked)


def test_batched_segments_equal_one_at_a_time(deberta):
    clf = pretrained_cross_encoder(deberta, 0.102, tokenizer=deberta, pair_format="segments",
                                   both_orders=False, batch_size=3)
    pairs = [(A, B), (C + " " + C, A), (B, "short"), (A, C)]
    one_by_one = [clf.predict_proba([pair])[0] for pair in pairs]
    np.testing.assert_allclose(clf.predict_proba(pairs), one_by_one, atol=1e-5)


def test_bare_encoder_is_refused(tmp_path):
    from transformers import BertConfig

    bare = _save_classifier(tmp_path / "bare", BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64), head=False)
    with pytest.raises(ValueError, match="not a trained pair classifier"):
        pretrained_cross_encoder(bare, 0.5)


def test_hub_config_without_a_model_path_says_what_to_pass(compose_cfg):
    cfg = compose_cfg(*TINY, "classifier=darling_modernbert")
    with pytest.raises(ValueError, match=r"classifier\.model is required"):
        validate(cfg)


def test_unknown_pair_format_is_refused(deberta):
    with pytest.raises(ValueError, match="pair_format='pairs'"):
        CrossEncoderClassifier(model=deberta, pair_format="pairs").fit([(A, B)], [0])
