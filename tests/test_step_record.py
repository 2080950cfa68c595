"""The training step's record (``ScoredBatch.records``) and metrics row (``_step_metrics``) on a
fixed batch, by hand: 5 rollouts in 2 groups, one failed quality."""

import math

import numpy as np
import pytest
import torch

from darling.rollout.base import Samples
from darling.tasks.prompts import PromptRow
from darling.train.module import ScoredBatch, _step_metrics

ROWS = [PromptRow("p0", "Name a colour.", "open"), PromptRow("p1", "Name a fruit.", "open")]


def _scored():
    # group 7 (prompt p0): rollouts 0, 1; group 9 (prompt p1): rollouts 2, 3, 4.
    # Rollout 1 failed quality (NaN): kept K = 4 rollouts 0, 2, 3, 4.
    samples = Samples(["red", "???", "apple", "apple!", "pear"], [7, 7, 9, 9, 9],
                      [ROWS[0], ROWS[0], ROWS[1], ROWS[1], ROWS[1]])
    return ScoredBatch(
        step=4,
        samples=samples,
        quality=np.array([0.5, np.nan, 1.0, 0.0, 0.5]),
        keep=np.array([0, 2, 3, 4]),
        labels=np.array([0, 0, 0, 1]),  # group 9: apple, apple! one class; pear another
        diversity=np.array([0.0, 0.5, 0.5, 1.0]),
        rewards=np.array([0.25, 0.75, 0.0, 0.5]),
        advantages=torch.tensor([0.0, 0.0, 0.5, -0.25, -0.25]),
        metrics={"reward": {"mean": 0.375, "quality_mean": 0.5},
                 "pairs": {"pairs": 3.0},
                 "diversity": {"extra": 2.0},
                 "advantage": {"zero_share": 0.5}},
    )


def test_records_give_each_rollout_its_scores_and_nulls_for_a_failed_one():
    records = _scored().records()
    assert records == [
        {"step": 4, "group_id": 7, "prompt_id": "p0", "response": "red", "quality": 0.5,
         "class": 0, "diversity": 0.0, "reward": 0.25, "advantage": 0.0},
        # failed quality: excluded from partition, diversity and reward; advantage 0
        {"step": 4, "group_id": 7, "prompt_id": "p0", "response": "???", "quality": None,
         "class": None, "diversity": None, "reward": None, "advantage": 0.0},
        {"step": 4, "group_id": 9, "prompt_id": "p1", "response": "apple", "quality": 1.0,
         "class": 0, "diversity": 0.5, "reward": 0.75, "advantage": 0.5},
        {"step": 4, "group_id": 9, "prompt_id": "p1", "response": "apple!", "quality": 0.0,
         "class": 0, "diversity": 0.5, "reward": 0.0, "advantage": -0.25},
        {"step": 4, "group_id": 9, "prompt_id": "p1", "response": "pear", "quality": 0.5,
         "class": 1, "diversity": 1.0, "reward": 0.5, "advantage": -0.25},
    ]


def test_step_metrics_by_hand():
    metrics = _step_metrics(_scored(), tokens=12, loss={"total": 0.5, "ratio_mean": 1.0},
                            logp={"logp_mean": -2.0},
                            seconds={"generate": 2.0, "quality": 0.5})
    expected = {
        "reward/mean": 0.375,
        "reward/quality_mean": 0.5,
        "partition/pairs": 3.0,
        # kept classes: group 7 {0} -> 1 class of 1; group 9 {0, 0, 1} -> 2 classes of 3
        "diversity/classes_per_group": (1 + 2) / 2,
        "diversity/classes_share": (1 / 1 + 2 / 3) / 2,
        # singleton classes: group 7's one rollout, group 9's pear -> 2 of 4 kept rollouts
        "diversity/singleton_share": 2 / 4,
        "diversity/extra": 2.0,
        "diversity/score_mean": (0.0 + 0.5 + 0.5 + 1.0) / 4,
        "advantage/zero_share": 0.5,
        "loss/total": 0.5,
        "loss/ratio_mean": 1.0,
        "time/generate": 2.0,
        "time/quality": 0.5,
        "rollout/tokens": 12.0,
        "rollout/response_len_mean": 12 / 5,  # over all 5 rollouts, the failed one included
        "rollout/tokens_per_s": 12 / 2.0,
        "rollout/step": 5.0,  # steps done: the 0-based step 4 is the fifth
        "rollout/logp_mean": -2.0,
    }
    assert list(metrics) == list(expected)  # the order of metrics.csv's columns
    assert metrics == pytest.approx(expected, rel=1e-15)


def test_step_metrics_of_a_step_with_no_scored_rollout_are_nan_not_an_error():
    scored = _scored()
    scored.keep = np.array([], dtype=int)
    scored.labels = scored.diversity = scored.rewards = np.array([])
    metrics = _step_metrics(scored, tokens=0, loss={}, logp={}, seconds={"generate": 0.0})
    assert math.isnan(metrics["diversity/classes_per_group"])
    assert math.isnan(metrics["diversity/score_mean"])
    assert metrics["rollout/tokens_per_s"] == 0.0
