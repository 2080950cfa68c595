"""Evaluation metrics: golden values, reference implementations, invariances, edge cases."""

from __future__ import annotations

import doctest
import itertools
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from darling import metrics
from darling.metrics import (
    correct_distinct_k,
    default_ks,
    distinct_k,
    distinct_n,
    embedding,
    lexical,
    mean_pairwise_cosine_distance,
    ngram_novelty_scores,
    novelty,
    pass_at_k,
    pass_at_k_curve,
    passk,
    utility_k,
    vendi_score,
)

# Two groups interleaved, and the same rollouts after a permutation within and across groups
# plus a relabelling of the classes: every metric must give the same result (permuted).
GROUPS = ["p", "q", "p", "p", "q", "p", "q"]
LABELS = ["a", "x", "a", "b", "x", "c", "y"]
PERMUTATION = np.array([5, 4, 0, 6, 3, 1, 2])
RELABEL = {"a": 7, "b": 8, "c": 9, "x": 7, "y": 8}


def _permuted(values, permutation=PERMUTATION):
    return [values[i] for i in permutation]


# --- pass@k -------------------------------------------------------------------------------


def _brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (the first c correct) holding a correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in subset) for subset in subsets) / len(subsets)


def test_pass_at_k_matches_brute_force_enumeration():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(_brute_force_pass_at_k(n, c, k))


def test_pass_at_k_is_stable_for_large_n():
    # C(256, 128) overflows float64; the product form does not. 1 correct of 256, k = 128 -> 1/2.
    assert pass_at_k(256, 1, 128) == pytest.approx(0.5)
    assert pass_at_k(256, 0, 128) == 0.0


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_default_ks():
    assert default_ks(1) == [1]
    assert default_ks(8) == [1, 2, 4, 8]
    assert default_ks(10) == [1, 2, 4, 8, 10]


def test_pass_at_k_curve_averages_over_prompts_and_ignores_order():
    correct = [True, False, False, True, False, True, False, False, True]
    groups = ["a", "b", "a", "a", "b", "b", "a", "b", "b"]  # a: 2 of 4, b: 2 of 5
    curve = pass_at_k_curve(correct, groups)
    assert list(curve) == [1, 2, 4]  # n_min = 4
    for k in curve:
        assert curve[k] == pytest.approx((pass_at_k(4, 2, k) + pass_at_k(5, 2, k)) / 2)
    order = np.random.default_rng(0).permutation(len(correct))
    assert pass_at_k_curve(_permuted(correct, order), _permuted(groups, order)) == pytest.approx(
        curve
    )
    assert pass_at_k_curve(np.array(correct, dtype=int), groups, ks=[3]) == {
        3: pytest.approx((pass_at_k(4, 2, 3) + pass_at_k(5, 2, 3)) / 2)
    }


def test_pass_at_k_curve_errors():
    with pytest.raises(ValueError, match="k=3 exceeds the 2 samples of group 'b'"):
        pass_at_k_curve([True] * 6, ["a"] * 4 + ["b"] * 2, ks=[1, 3])
    with pytest.raises(ValueError, match="at least one sample"):
        pass_at_k_curve([], [])
    with pytest.raises(ValueError, match="booleans"):
        pass_at_k_curve([0.5, 1.0], ["a", "a"])
    with pytest.raises(ValueError, match="group_ids"):
        pass_at_k_curve([True, False], ["a"])


# --- distinct_k, correct_distinct_k, utility_k ---------------------------------------------


def test_distinct_k_golden_and_invariances():
    # p: a, a, b, c -> 3 classes; q: x, x, y -> 2 classes; mean 2.5
    per_group, m = distinct_k(LABELS, GROUPS)
    assert per_group == {"p": 3, "q": 2} and m == {"distinct_k_mean": 2.5}
    relabelled = [RELABEL[label] for label in LABELS]
    assert distinct_k(_permuted(relabelled), _permuted(GROUPS))[0] == per_group


def test_correct_distinct_k_golden_and_invariances():
    correct = [True, True, False, False, True, True, False]
    # p: a (correct twice), b (wrong), c (correct) -> 2; q: x (wrong, correct) -> 1, y (wrong)
    per_group, m = correct_distinct_k(LABELS, correct, GROUPS)
    assert per_group == {"p": 2, "q": 1} and m == {"correct_distinct_k_mean": 1.5}
    relabelled = [RELABEL[label] for label in LABELS]
    assert (
        correct_distinct_k(_permuted(relabelled), _permuted(correct), _permuted(GROUPS))[0]
        == per_group
    )


SCORES = [8.0, 5.0, 9.0, 4.0, 7.0, 6.0, 3.0]


def test_utility_k_golden():
    per_group, m = utility_k(LABELS, SCORES, GROUPS, patience=0.8)
    # p, in order: a (s=8, new), a (s=9, repeat), b (s=4, new), c (s=6, new)
    #   numerator   = 1*8 + 0.8*0 + 0.64*4 + 0.512*6 = 8 + 2.56 + 3.072 = 13.632
    #   denominator = 1 + 0.8 + 0.64 + 0.512 = 2.952            -> 13.632 / 2.952
    # q, in order: x (s=5, new), x (s=7, repeat), y (s=3, new)
    #   numerator = 1*5 + 0 + 0.64*3 = 6.92; denominator = 2.44 -> 6.92 / 2.44
    assert per_group["p"] == pytest.approx(13.632 / 2.952)
    assert per_group["q"] == pytest.approx(6.92 / 2.44)
    assert m["utility_k_mean"] == pytest.approx((13.632 / 2.952 + 6.92 / 2.44) / 2)
    assert m["groups_scored"] == 2 and m["groups_missing_score"] == 0


def test_utility_k_special_cases():
    # patience 1: plain mean of the first-of-class scores over all k: (8 + 4) / 3
    assert utility_k(["a", "a", "b"], [8, 9, 4], ["g"] * 3, patience=1.0)[0] == {
        "g": pytest.approx(4.0)
    }
    # all distinct, all 10 -> 10; all one class -> s_1 * 1 / sum of weights
    assert utility_k([1, 2, 3], [10, 10, 10], ["g"] * 3)[0]["g"] == pytest.approx(10.0)
    assert utility_k([1, 1, 1], [10, 10, 10], ["g"] * 3)[0]["g"] == pytest.approx(10 / 2.44)
    # a group of one: s_1
    assert utility_k(["a"], [7], ["g"])[0] == {"g": 7.0}
    with pytest.raises(ValueError, match="patience"):
        utility_k(["a"], [7], ["g"], patience=0.0)
    with pytest.raises(ValueError, match="infinite"):
        utility_k(["a"], [math.inf], ["g"])


def test_utility_k_invariances():
    per_group, _ = utility_k(LABELS, SCORES, GROUPS)
    relabelled = [RELABEL[label] for label in LABELS]
    assert utility_k(relabelled, SCORES, GROUPS)[0] == pytest.approx(per_group)
    # moving rollouts of other groups around changes nothing while each group keeps its order
    order = [1, 0, 4, 2, 6, 3, 5]
    moved, _ = utility_k(*(_permuted(values, order) for values in (LABELS, SCORES, GROUPS)))
    assert moved == pytest.approx(per_group)
    # order within a group matters by design: the first generation of a class gets the credit
    late_good, _ = utility_k(["a", "a"], [2, 9], ["g", "g"])
    early_good, _ = utility_k(["a", "a"], [9, 2], ["g", "g"])
    assert late_good["g"] == pytest.approx(2 / 1.8) and early_good["g"] == pytest.approx(9 / 1.8)


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan])
def test_utility_k_excludes_and_counts_groups_with_a_missing_score(missing):
    scores = list(SCORES)
    scores[4] = missing  # a judge failure in group q
    per_group, m = utility_k(LABELS, scores, GROUPS)
    assert list(per_group) == ["p"]
    assert per_group["p"] == pytest.approx(13.632 / 2.952)  # untouched
    assert m["utility_k_mean"] == pytest.approx(13.632 / 2.952)
    assert m["groups_scored"] == 1 and m["groups_missing_score"] == 1
    _, all_missing = utility_k(["a"], [missing], ["g"])
    assert math.isnan(all_missing["utility_k_mean"]) and all_missing["groups_missing_score"] == 1


# --- lexical ------------------------------------------------------------------------------


def test_distinct_n_golden():
    texts = ["The cat sat", "the cat ran", "a dog", ""]
    groups = ["g", "g", "h", "h"]
    # g unigrams: the cat sat the cat ran -> 4 unique of 6; h: a dog -> 2 of 2
    per_group, m = distinct_n(texts, groups, 1)
    assert per_group == {"g": 4 / 6, "h": 1.0}
    assert m == {"distinct_n_mean": pytest.approx(5 / 6)}
    # g bigrams: (the cat) (cat sat) (the cat) (cat ran) -> 3 of 4; h: (a dog) -> 1 of 1
    assert distinct_n(texts, groups, 2)[0] == {"g": 0.75, "h": 1.0}
    # g 3-grams: 2 of 2; h has none -> 0
    assert distinct_n(texts, groups, 3)[0] == {"g": 1.0, "h": 0.0}
    # 4-grams: none anywhere
    assert distinct_n(texts, groups, 4)[0] == {"g": 0.0, "h": 0.0}
    assert (
        distinct_n(_permuted(["a b", "a b", "c"] * 2 + ["d"]), _permuted(GROUPS), 1)[0]
        == (distinct_n(["a b", "a b", "c"] * 2 + ["d"], GROUPS, 1)[0])
    )
    with pytest.raises(ValueError, match="n must be"):
        distinct_n(texts, groups, 0)


def _slow_ngram_novelty(texts, groups, n=4):
    """Reference: the spec's definition, one rollout at a time."""
    scores = []
    for i, text in enumerate(texts):
        words = text.split()
        positions = len(words) - n + 1
        if positions <= 0:
            scores.append(0.0)
            continue
        own = {tuple(words[p : p + n]) for p in range(positions)}
        others = set()
        for j, other in enumerate(texts):
            if j != i and groups[j] == groups[i]:
                w = other.split()
                others |= {tuple(w[p : p + n]) for p in range(len(w) - n + 1)}
        scores.append(len(own - others) / positions)
    return np.array(scores)


def test_ngram_novelty_golden():
    texts = ["a b c d e", "a b c d", "a b c d a b c d", "x y", "", "Solo one two three"]
    groups = ["g", "g", "g", "g", "g", "s"]
    scores = ngram_novelty_scores(texts, groups)
    # "a b c d e": (a b c d) shared, (b c d e) own        -> 1 / 2
    # "a b c d": its only 4-gram is shared                -> 0 / 1
    # "a b c d a b c d": 5 positions, distinct 4-grams (abcd)(bcda)(cdab)(dabc); own: 3 -> 3 / 5
    # "x y" and "" are shorter than 4 words               -> 0
    # alone in its group, 1 position, 1 distinct 4-gram   -> 1
    assert scores.tolist() == [0.5, 0.0, 0.6, 0.0, 0.0, 1.0]
    assert scores.shape == (6,) and scores.dtype == np.float64
    # all-identical group: nothing is novel
    assert ngram_novelty_scores(["a b c d e"] * 3, [0, 0, 0]).tolist() == [0.0, 0.0, 0.0]
    # case is kept (authors' code): "A" and "a" differ
    assert ngram_novelty_scores(["A b c d", "a b c d"], [0, 0]).tolist() == [1.0, 1.0]


def test_ngram_novelty_matches_the_slow_reference_and_is_permutation_equivariant():
    rng = np.random.default_rng(0)
    vocab = ["w0", "w1", "w2", "w3"]
    texts = [" ".join(rng.choice(vocab, size=rng.integers(0, 12))) for _ in range(30)]
    groups = rng.integers(0, 4, size=30).tolist()
    fast = ngram_novelty_scores(texts, groups)
    np.testing.assert_allclose(fast, _slow_ngram_novelty(texts, groups))
    order = rng.permutation(30)
    np.testing.assert_allclose(
        ngram_novelty_scores(_permuted(texts, order), _permuted(groups, order)), fast[order]
    )
    for n in (1, 2, 3):
        np.testing.assert_allclose(
            ngram_novelty_scores(texts, groups, n=n), _slow_ngram_novelty(texts, groups, n=n)
        )


def test_ngram_novelty_is_fast_enough_for_a_training_batch():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(500)]
    texts = [" ".join(rng.choice(vocab, size=300)) for _ in range(64)]
    groups = np.repeat(np.arange(8), 8)
    ngram_novelty_scores(texts, groups)  # warm-up
    best = min(_timed(ngram_novelty_scores, texts, groups) for _ in range(3))
    assert best < 0.1, f"64 x 300 words took {best * 1000:.0f} ms"


def _timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


# --- embedding ----------------------------------------------------------------------------


def test_mean_pairwise_cosine_distance_golden():
    e = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0]])
    d, m = mean_pairwise_cosine_distance(e, ["g", "g", "g", "solo"])
    # cosine distances in g: (0,1) 1, (0,2) 2, (1,2) 1
    # d_0 = (1 + 2) / 2 = 1.5; d_1 = (1 + 1) / 2 = 1; d_2 = (2 + 1) / 2 = 1.5; solo -> 0
    np.testing.assert_allclose(d, [1.5, 1.0, 1.5, 0.0])
    assert m["mean_pairwise_cosine_distance"] == pytest.approx(4 / 3)
    assert m["groups_of_one"] == 1


def test_mean_pairwise_cosine_distance_matches_sklearn_and_permutes():
    cosine_distances = pytest.importorskip("sklearn.metrics.pairwise").cosine_distances
    rng = np.random.default_rng(1)
    e = rng.normal(size=(7, 5))
    d, _ = mean_pairwise_cosine_distance(e, GROUPS)
    for group in set(GROUPS):
        members = [i for i, g in enumerate(GROUPS) if g == group]
        reference = cosine_distances(e[members]).sum(axis=1) / (len(members) - 1)
        np.testing.assert_allclose(d[members], reference, atol=1e-12)
    d_perm, _ = mean_pairwise_cosine_distance(e[PERMUTATION], _permuted(GROUPS))
    np.testing.assert_allclose(d_perm, d[PERMUTATION])
    # scale does not matter
    np.testing.assert_allclose(mean_pairwise_cosine_distance(3 * e, GROUPS)[0], d)


@pytest.mark.parametrize(
    ("e", "message"),
    [
        (np.array([[1.0, 0.0], [0.0, 0.0]]), "are zero"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
        (np.ones(2), "shape"),
    ],
)
def test_embedding_metrics_reject_bad_embeddings(e, message):
    with pytest.raises(ValueError, match=message):
        mean_pairwise_cosine_distance(e, [0, 0])
    with pytest.raises(ValueError, match=message):
        vendi_score(e, [0, 0])


def _reference_vendi(e: np.ndarray) -> float:
    """exp of the Shannon entropy of the eigenvalues of K/n, K the n x n cosine kernel."""
    x = e / np.linalg.norm(e, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(x @ x.T / len(x))
    lam = lam[lam > 1e-12]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def test_vendi_score_golden_values():
    at_60_degrees = [0.5, math.sqrt(3) / 2, 0]
    e = np.array([[1, 2, 0], [2, 4, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], at_60_degrees])
    groups = ["same", "same", "orth", "orth", "orth", "angle", "angle"]
    per_group, m = vendi_score(e, groups)
    # n identical directions: K/n has one eigenvalue 1 -> exp(0) = 1
    assert per_group["same"] == pytest.approx(1.0)
    # n orthogonal: K/n = I/n, n eigenvalues 1/n -> exp(ln n) = n
    assert per_group["orth"] == pytest.approx(3.0)
    # two unit vectors at 60 degrees: K = [[1, c], [c, 1]], c = 1/2; eigenvalues of K/2 are
    # (1 + c)/2 = 3/4 and (1 - c)/2 = 1/4 -> exp(-(3/4 ln 3/4 + 1/4 ln 1/4)) ~ 1.7548
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert per_group["angle"] == pytest.approx(expected)
    assert m["vendi_mean"] == pytest.approx((1 + 3 + expected) / 3)


def test_vendi_score_orthogonal_and_reference():
    per_group, _ = vendi_score(np.eye(6), ["g"] * 6)
    assert per_group["g"] == pytest.approx(6.0)
    rng = np.random.default_rng(2)
    wide = rng.normal(size=(5, 16))  # n <= D: n x n kernel
    tall = rng.normal(size=(12, 3))  # n > D: the D x D Gram matrix
    for e in (wide, tall):
        assert vendi_score(e, [0] * len(e))[0][0] == pytest.approx(_reference_vendi(e))
        order = rng.permutation(len(e))
        assert vendi_score(e[order], [0] * len(e))[0][0] == pytest.approx(_reference_vendi(e))
    assert vendi_score(np.array([[0.3, 0.4]]), ["one"])[0] == {"one": pytest.approx(1.0)}


# --- module hygiene -----------------------------------------------------------------------


def test_metric_module_doctests():
    for module in (metrics, embedding, lexical, novelty, passk):
        assert doctest.testmod(module).failed == 0


def test_core_imports_without_heavy_frameworks():
    blocked = ["lightning", "pytorch_lightning", "hydra", "omegaconf", "vllm", "wandb"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "import darling.metrics, darling.tasks, darling.tasks.data.build_builtin\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
