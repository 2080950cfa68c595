"""Union-find partition: closure, groups never merge, permutation and relabelling invariance."""

import numpy as np
import pytest

from darling.diversity import class_diversity
from darling.partition.base import PairClassifier, short_answer_rule, short_answer_words
from darling.partition.keyed import (
    AnswerSetPartition,
    ExactTextPartition,
    MathAnswerPartition,
    labels_from_keys,
)
from darling.partition.protocol import Partition, partition_rollouts
from darling.partition.unionfind import (
    union_find_labels,
    union_find_partition,
    within_group_pairs,
)
from darling.tasks.prompts import PromptRow


class FirstWordClassifier(PairClassifier):
    """Test stub: equivalent iff the first words match (long texts bypass the short rule)."""

    backend = "first_word_test"
    threshold_ = 0.5

    def __init__(self):
        self.calls = 0

    def _score_indexed(self, texts, index_pairs):
        self.calls += 1
        return np.array([float(texts[i].split()[0] == texts[j].split()[0]) for i, j in index_pairs])


def long(word: str, tag: int) -> str:
    return f"{word} " + " ".join(f"filler{tag}_{k}" for k in range(8))


def test_union_find_transitive_closure():
    # a~b, b~c puts a, b, c together even though a !~ c
    assert union_find_labels(5, np.array([[0, 1], [1, 2], [3, 4]])).tolist() == [0, 0, 0, 1, 1]


def test_within_group_pairs_counts():
    pairs = within_group_pairs(["x", "y", "x", "x", "z"])
    assert len(pairs) == 3  # group x has 3 members -> 3 pairs; y and z none
    assert {tuple(p) for p in pairs.tolist()} == {(0, 2), (0, 3), (2, 3)}


def test_partition_never_crosses_groups_and_scores_once():
    clf = FirstWordClassifier()
    texts = [long("apple", 0), long("apple", 1), long("apple", 2), long("pear", 3)]
    labels, metrics = union_find_partition(texts, [0, 0, 1, 1], clf)
    assert clf.calls == 1  # one batched call for the whole batch
    assert labels[0] == labels[1] and labels[1] != labels[2] and labels[2] != labels[3]
    assert metrics["pairs"] == 2


def test_short_answer_rule_before_model():
    clf = FirstWordClassifier()
    labels, _ = union_find_partition(["Lima", "lima.", "Quito"], ["g"] * 3, clf)
    assert clf.calls == 0 and labels.tolist() == [0, 0, 1]


def test_permutation_and_relabelling_invariance():
    rng = np.random.default_rng(0)
    words = ["apple", "pear", "fig"]
    texts = [long(words[rng.integers(3)], k) for k in range(12)]
    gids = [k // 4 for k in range(12)]
    labels, _ = union_find_partition(texts, gids, FirstWordClassifier())
    div = class_diversity(labels, gids)
    perm = rng.permutation(12)
    relabel = {0: "zeta", 1: "alpha", 2: "mid"}
    labels_p, _ = union_find_partition(
        [texts[i] for i in perm], [relabel[gids[i]] for i in perm], FirstWordClassifier()
    )
    np.testing.assert_allclose(class_diversity(labels_p, [relabel[gids[i]] for i in perm]),
                               div[perm])


def test_partition_length_mismatch_and_nan():
    with pytest.raises(ValueError, match="group_ids"):
        union_find_partition(["a", "b"], [0], FirstWordClassifier())

    class NaNClassifier(FirstWordClassifier):
        def _score_indexed(self, texts, index_pairs):
            return np.full(len(index_pairs), np.nan)

    with pytest.raises(ValueError, match="NaN"):
        union_find_partition([long("a", 0), long("b", 1)], [0, 0], NaNClassifier())


def test_group_of_one_and_empty_texts():
    labels, metrics = union_find_partition(["", "   ", "ok"], [0, 1, 1], FirstWordClassifier())
    assert labels.tolist() == [0, 1, 2] and metrics["pairs"] == 1


def test_answer_set_partition_keys_classes_by_the_answer_given():
    rows = [PromptRow(id="p", prompt="Name a country.", kind="answers",
                      answers=("United States", "USA", "France"),
                      aliases=(("USA", "United States"),))] * 5
    texts = ["USA.", "It is the United States.", "France", "Narnia", "narnia"]
    labels, metrics = partition_rollouts(texts, [0, 0, 0, 0, 1], rows, AnswerSetPartition())
    # aliases are one class; a repeated wrong answer is one class, but never across groups
    assert labels.tolist() == [0, 0, 1, 2, 3] and metrics == {}
    assert class_diversity(labels, [0, 0, 0, 0, 1]).tolist() == pytest.approx(
        [2 / 3, 2 / 3, 1, 1, 1])


def test_labels_from_keys_match_union_find_conventions():
    keys, groups = ["x", "y", "x", "x", "y"], ["a", "a", "a", "b", "b"]
    assert labels_from_keys(keys, groups).tolist() == [0, 1, 0, 2, 3]
    with pytest.raises(ValueError, match="3 keys for 2 group ids"):
        labels_from_keys(["x", "y", "z"], [0, 0])


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        # whitespace tokens, lower-cased, trailing sentence punctuation stripped (spec section 2)
        ("Lima", "lima.", True),
        ("Lima, Peru", "lima peru!", True),
        ("1/2", "1/3", False),  # the old \w+ tokens {1, 2} vs {1, 3} shared one of two: "same"
        ("3.14", "3.15", False),
        ("-1", "1", False),  # the sign is part of the token
        ("2,000", "2,500", False),
        ("!!!", "???", False),  # punctuation-only tokens are kept whole
        ("x = -1", "x = 1", True),  # 2 of 3 tokens shared: 2 * 2 >= 3
        ("", "", True),
        ("", "Lima", False),
    ],
)
def test_short_answer_rule_golden(a, b, same):
    assert short_answer_rule(a, b) is same
    assert short_answer_rule(b, a) is same


def test_short_answer_words_keep_signs_and_inner_characters():
    assert short_answer_words("Lima.  -1/2 2,000 3.14! !!!") == [
        "lima", "-1/2", "2,000", "3.14", "!!!"
    ]


def test_distinct_short_numbers_are_not_merged_by_the_rule():
    # the rule alone decides short pairs: "1/2", "1/3", "-1", "1" are four classes
    labels, _ = union_find_partition(["1/2", "1/3", "-1", "1"], ["g"] * 4, FirstWordClassifier())
    assert labels.tolist() == [0, 1, 2, 3]


def test_one_partition_protocol_for_pair_classifiers_and_key_partitions():
    texts = [long("apple", 0), long("apple", 1), long("pear", 2), "7", r"\boxed{7}", "7.5"]
    gids = [0, 0, 0, 1, 1, 1]
    clf = FirstWordClassifier()
    assert isinstance(clf, Partition) and isinstance(MathAnswerPartition(), Partition)
    labels, metrics = partition_rollouts(texts[:3], gids[:3], None, clf)
    assert labels.tolist() == [0, 0, 1] and metrics["pairs"] == 3
    labels, metrics = partition_rollouts(texts[3:], gids[3:], None, MathAnswerPartition())
    assert labels.tolist() == [0, 0, 1] and metrics == {}
    labels, _ = partition_rollouts(["a", "a", "a ", "a"], [0, 0, 0, 1], None, ExactTextPartition())
    assert labels.tolist() == [0, 0, 1, 2]  # equal texts of different groups stay apart
    with pytest.raises(TypeError, match="labels"):
        partition_rollouts(["a"], [0], None, object())
    with pytest.raises(ValueError, match="prompt rows"):
        partition_rollouts(["a", "b"], [0, 0], [None], ExactTextPartition())


def test_math_answer_partition_is_linear_not_pairwise():
    # 2,000 rollouts in one group: a pairwise check would compare ~2 million pairs
    texts = [f"so the answer is {k % 3}" for k in range(2000)]
    labels, _ = MathAnswerPartition().labels(texts, [0] * 2000, None)
    assert labels[:6].tolist() == [0, 1, 2, 0, 1, 2] and labels.max() == 2
