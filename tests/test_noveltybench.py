"""NoveltyBench-comparable evaluation (issue 22): its greedy partition, its reward bins, utility
with patience 0.8, and ``+eval=noveltybench`` end to end on a fixture with known classes and
scores, checked against values derived by hand."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from darling.eval.config import register_eval_configs
from darling.eval.run import (
    check_eval_config,
    eval_partitioner,
    evaluation_setup,
    score,
    write_report,
)
from darling.metrics.novelty import noveltybench_score, utility_k
from darling.partition.base import PairClassifier
from darling.partition.greedy import greedy_representative_labels
from darling.partition.unionfind import union_find_labels
from darling.rollout.base import Samples
from darling.tasks.prompts import PromptRow
from tests.conftest import CONF

register_eval_configs()

# --- the fixture: two prompts, k = 10 generations each ---------------------------------------
# Each generation is named by its first word. Prompt g1: equivalent pairs (p = 0.9) are the a's
# among themselves, a2 ~ x1, x1 ~ x2 and the b's among themselves; c1 ~ d1 scores exactly the
# threshold 0.102 (not above it: different); every other pair 0.05. Prompt g2: all ten alike.
G1 = ["a1", "a2", "x1", "b1", "a3", "b2", "c1", "x2", "d1", "b3"]
G2 = [f"s{i}" for i in range(10)]
EQUIVALENT = {frozenset(p) for p in [("a1", "a2"), ("a1", "a3"), ("a2", "a3"), ("a2", "x1"),
                                     ("x1", "x2"), ("b1", "b2"), ("b1", "b3"), ("b2", "b3")]}
AT_THRESHOLD = {frozenset(("c1", "d1"))}
# Raw reward-model scores and their NoveltyBench bins (bisect_left over its thresholds + 1):
# -1.0 -> 10, -3.0 -> 9, -4.0 -> 8, -4.5 -> 7, -5.2 -> 6, -5.6 -> 5, -5.9 -> 4, -6.1 -> 3,
# -7.0 -> 2, -7.71875 (= the first threshold) -> 1; g2: -2.0 -> 10 (above -2.046875).
RAW = dict(zip(G1, [-1.0, -3.0, -4.0, -4.5, -5.2, -5.6, -5.9, -6.1, -7.0, -7.71875],
               strict=True)) | dict.fromkeys(G2, -2.0)
BINS_G1 = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]

# Greedy (NoveltyBench): a1 opens class 0 and takes a2, a3; x1 (~a2 but not ~a1) opens class 1
# and takes x2; b1 takes b2, b3; c1 and d1 stay alone -> classes {a1,a2,a3} {x1,x2} {b1,b2,b3}
# {c1} {d1}: distinct 5. Union-find joins x1, x2 to the a's through a2: distinct 4.
GREEDY_G1 = [0, 0, 1, 2, 0, 2, 3, 1, 4, 2]
UNION_G1 = [0, 0, 0, 1, 0, 1, 2, 0, 3, 1]
P = 0.8
NORM = sum(P**i for i in range(10))  # 4.463129088
# utility = sum_i p^(i-1) N_i s_i / sum_i p^(i-1), N_i = 1 for a class's first generation only:
# greedy g1, firsts at positions 0, 2, 3, 6, 8 (scores 10, 8, 7, 4, 2)
UTILITY_GREEDY_G1 = (10 + 8 * P**2 + 7 * P**3 + 4 * P**6 + 2 * P**8) / NORM  # 4.500905...
# union-find g1, firsts at positions 0, 3, 6, 8 (scores 10, 7, 4, 2)
UTILITY_UNION_G1 = (10 + 7 * P**3 + 4 * P**6 + 2 * P**8) / NORM  # 3.353730...
UTILITY_G2 = 10 / NORM  # one class: only the first generation counts, 2.240581...


def _text(tag):
    """A generation of more than five words, so NoveltyBench's short-answer rule stays out."""
    return f"{tag} is the opening word of this fixture generation"


class TableClassifier(PairClassifier):
    """Pair probabilities from the fixture's table (by first word), threshold 0.102."""

    backend = "fixture_table"

    def __init__(self, threshold: float = 0.102):
        self.threshold = threshold
        self.threshold_ = threshold

    def _score_indexed(self, texts, index_pairs):
        def p(i, j):
            pair = frozenset((texts[i].split()[0], texts[j].split()[0]))
            if pair in AT_THRESHOLD:
                return self.threshold_
            same_prompt_g2 = all(t.split()[0] in G2 for t in (texts[i], texts[j]))
            return 0.9 if pair in EQUIVALENT or same_prompt_g2 else 0.05

        return np.asarray([p(int(i), int(j)) for i, j in index_pairs])


def raw_rm_scores(prompts, completions, rows, **kwargs):
    """The fixture's raw reward-model scores, looked up by the generation's first word."""
    return [RAW[c.split()[0]] for c in completions]


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="evaluate", overrides=list(overrides))


def test_bins_are_noveltybench_s():
    assert [noveltybench_score(RAW[t]) for t in G1] == BINS_G1
    assert noveltybench_score(-2.0) == 10 and noveltybench_score(-2.046875) == 9


def test_greedy_partition_on_the_fixture():
    tags = G1
    pairs = [(i, j) for i in range(10) for j in range(i + 1, 10)
             if frozenset((tags[i], tags[j])) in EQUIVALENT]
    assert greedy_representative_labels(["g1"] * 10, np.array(pairs)).tolist() == GREEDY_G1
    assert union_find_labels(10, np.array(pairs)).tolist() == UNION_G1


def _noveltybench_loop(n, equivalent):
    """NoveltyBench's ``partition_responses`` as written (src/partition.py): the slow reference,
    asking ``equivalent(representative, j)`` only for the pairs it needs."""
    partition, classes = [-1] * n, 0
    for i in range(n):
        if partition[i] >= 0:
            continue
        partition[i] = classes
        for j in range(i + 1, n):
            if partition[j] == -1 and equivalent(i, j):
                partition[j] = classes
        classes += 1
    return partition


@pytest.mark.parametrize("seed", range(20))
def test_greedy_equals_the_reference_loop_and_refines_union_find(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    edge = np.triu(rng.random((n, n)) < rng.uniform(0.05, 0.6), k=1)
    pairs = np.argwhere(edge)
    greedy = greedy_representative_labels([0] * n, pairs)
    assert greedy.tolist() == _noveltybench_loop(n, lambda i, j: bool(edge[i, j]))
    union = union_find_labels(n, pairs)
    for label in set(greedy.tolist()):  # every greedy class lies inside one union-find class
        assert len(set(union[greedy == label].tolist())) == 1


def test_greedy_keeps_groups_apart_and_equals_union_find_on_an_equivalence():
    # two groups interleaved; within each the relation is transitive, so both algorithms agree
    gids = ["a", "b", "a", "b", "a"]
    pairs = np.array([[0, 2], [1, 3]])
    assert greedy_representative_labels(gids, pairs).tolist() == [0, 1, 0, 1, 2]
    assert union_find_labels(5, pairs).tolist() == [0, 1, 0, 1, 2]


def test_noveltybench_preset_composes_its_protocol():
    cfg = _compose("+eval=noveltybench")
    assert (cfg.eval.k, cfg.rollout.n_per_prompt, cfg.rollout.temperature, cfg.rollout.top_p,
            cfg.rollout.max_new_tokens) == (10, 10, 1.0, 1.0, 512)
    assert cfg.eval.partition == "greedy" and cfg.eval.utility
    assert cfg.classifier.model == "yimingzhang/deberta-v3-large-generation-similarity"
    assert (cfg.classifier.threshold, cfg.classifier.max_length, cfg.classifier.both_orders) == (
        0.102, 128, False)
    assert cfg.quality.quality.path == "Skywork/Skywork-Reward-Gemma-2-27B-v0.2"
    assert list(cfg.quality.thresholds)[0] == -7.71875 and len(cfg.quality.thresholds) == 9
    with pytest.raises(ValueError, match=r"\+eval=noveltybench needs its prompts: pass "
                                         r"data.eval_path"):
        check_eval_config(cfg)


@pytest.mark.parametrize(
    ("partition", "distinct", "utility"),
    [("greedy", (5 + 1) / 2, (UTILITY_GREEDY_G1 + UTILITY_G2) / 2),
     ("union_find", (4 + 1) / 2, (UTILITY_UNION_G1 + UTILITY_G2) / 2)],
)
def test_noveltybench_evaluation_on_the_fixture(tmp_path, partition, distinct, utility):
    cfg = _compose("+eval=noveltybench", "data.eval_path=curated.jsonl",
                   f"eval.partition={partition}", f"eval.out_dir={tmp_path}")
    check_eval_config(cfg)
    with open_dict(cfg):  # the fixture's classifier and raw RM scores stand in for the hub models
        cfg.classifier = OmegaConf.create({"_target_": f"{__name__}.TableClassifier"})
        cfg.quality.quality = OmegaConf.create({
            "_target_": "darling.quality.callable_quality",
            "path": f"{__name__}:raw_rm_scores"})
    rows = [PromptRow("g1", "Tell me a story.", "open"), PromptRow("g2", "Name a colour.", "open")]
    samples = Samples([_text(t) for t in G1 + G2], ["g1"] * 10 + ["g2"] * 10,
                      [rows[0]] * 10 + [rows[1]] * 10)
    scores = score(samples, instantiate(cfg.quality), eval_partitioner(cfg))
    assert scores.quality[:10].tolist() == BINS_G1
    expected = GREEDY_G1 if partition == "greedy" else UNION_G1
    assert scores.labels[:10].tolist() == expected
    metrics, _ = write_report(tmp_path, samples, scores, 10, [1, 2, 4, 8], utility=True,
                              setup=evaluation_setup(cfg, {"source": "fixture"}))
    assert metrics["distinct@k"] == pytest.approx(distinct)
    assert metrics["utility@k"] == pytest.approx(utility, abs=1e-12)
    # the same numbers straight from the metric, per prompt
    per_group, _ = utility_k(expected + [99] * 10, BINS_G1 + [10] * 10, ["g1"] * 10 + ["g2"] * 10)
    assert per_group["g1"] == pytest.approx(
        UTILITY_GREEDY_G1 if partition == "greedy" else UTILITY_UNION_G1)
