"""The correct-only partition regime (spec section 3): Div over the correct rollouts only,
denominator #correct - 1, wrong rollouts at the fusion floor."""

import json

import numpy as np
import pytest

from darling.diversity import PartitionDiversity, correct_class_diversity
from darling.fusion import fuse_multiplicative
from darling.train.run import train
from tests.conftest import TINY


def test_correct_only_against_hand_computed_groups():
    # group a: 4 rollouts, 3 correct, the first two correct ones one class (label 0), the wrong
    #   one also in class 0 (it must not count): n_c = 3 -> (3-2)/2, (3-2)/2, (3-1)/2; wrong -> 0
    # group b: one correct rollout among wrong ones -> 1.0 (no other correct answer to repeat)
    # group c: no correct rollout -> all 0
    labels = [0, 0, 1, 0, 5, 6, 6, 7, 8]
    gids = ["a"] * 4 + ["b"] * 3 + ["c"] * 2
    quality = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0], dtype=float)
    div, metrics = PartitionDiversity(correct_only=True)(
        ["x"] * 9, gids, labels=labels, quality=quality
    )
    np.testing.assert_allclose(div, [0.5, 0.5, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    assert metrics["correct_share"] == pytest.approx(4 / 9)
    # the floor of the fusion step gives the wrong ones Norm = 0.1: R = q * max(Div, 0.1)
    rewards = fuse_multiplicative(quality, div, floor=0.1)
    np.testing.assert_allclose(rewards[:4], [0.5, 0.5, 1.0, 0.0])
    # the all-rollout regime on the same group a: |C| = 3, 3, 1, 3 -> 1/3, 1/3, 1, 1/3
    all_div, _ = PartitionDiversity()(["x"] * 4, gids[:4], labels=labels[:4])
    np.testing.assert_allclose(all_div, [1 / 3, 1 / 3, 1.0, 1 / 3])


def test_correct_threshold_and_missing_context():
    # judge scores on 1..10 with "correct" meaning >= 7: n_c = 2, different classes -> 1, 1
    div = correct_class_diversity([0, 1, 0], ["g"] * 3, np.array([8.0, 7.0, 3.0]) >= 7)
    np.testing.assert_allclose(div, [1.0, 1.0, 0.0])
    agg = PartitionDiversity(correct_only=True, correct_threshold=7)
    assert agg(["x"] * 3, ["g"] * 3, labels=[0, 1, 0], quality=[8.0, 7.0, 3.0])[0].tolist() == [
        1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="quality"):
        agg(["x"] * 3, ["g"] * 3, labels=[0, 1, 0])
    with pytest.raises(ValueError, match="labels"):
        PartitionDiversity()(["x"], ["g"])


def test_correct_only_in_a_training_run(compose_cfg, tmp_path):
    # length_quality lies in [0, 1]; with correct_threshold=0.5 some rollouts count as correct.
    cfg = compose_cfg(*TINY, "diversity=partition_correct", "diversity.correct_threshold=0.5",
                      "trainer.max_steps=1")
    train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "rollouts" / "rank0.jsonl").open()]
    assert rows
    for row in rows:
        if row["quality"] is not None and row["quality"] < 0.5:
            assert row["diversity"] == 0.0  # wrong rollouts: Div 0, the floor in the reward
    correct = [r for r in rows if r["quality"] is not None and r["quality"] >= 0.5]
    assert correct and all(0.0 <= r["diversity"] <= 1.0 for r in correct)


def test_darling_correct_preset_composes(compose_cfg):
    """reward=darling_correct is DARLING (same reward fields) with the correct-only diversity."""
    cfg = compose_cfg(*TINY, "reward=darling_correct")
    darling = compose_cfg(*TINY, "reward=darling")
    assert cfg.reward.name == "darling_correct"
    assert cfg.diversity.correct_only is True and darling.diversity.correct_only is False
    assert cfg.diversity._target_ == darling.diversity._target_
    assert {k: v for k, v in cfg.reward.items() if k != "name"} == {
        k: v for k, v in darling.reward.items() if k != "name"}
    assert cfg.classifier == darling.classifier
