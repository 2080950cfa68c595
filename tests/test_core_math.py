"""Golden values and reference loops for the pure core: diversity, fusion, advantages, losses."""

import math

import numpy as np
import pytest
import torch

from darling.advantages import group_advantages
from darling.diversity import (
    EmbeddingDiversity,
    NgramDiversity,
    NoDiversity,
    PartitionDiversity,
    class_diversity,
)
from darling.fusion import (
    fuse_additive,
    fuse_additive_zscore,
    fuse_multiplicative,
    shift_to_group_min,
    sigmoid,
)
from darling.losses import (
    k3_kl,
    masked_token_mean,
    ppo_clip_loss,
    sampler_gap,
    truncated_importance_weights,
)
from darling.rewards import Reward, training_reward


def test_class_diversity_golden():
    # group "a" (n=4): classes {0,1}, {2}, {3} -> |C| = 2,2,1,1 -> Div = 2/3, 2/3, 1, 1
    # group "b" (n=3): one class -> |C| = 3 -> Div = 0
    # group "c" (n=1): defined as 1.0
    labels = [0, 0, 1, 2, 5, 5, 5, 9]
    gids = ["a"] * 4 + ["b"] * 3 + ["c"]
    np.testing.assert_allclose(
        class_diversity(labels, gids), [2 / 3, 2 / 3, 1, 1, 0, 0, 0, 1.0]
    )


def test_class_diversity_all_singletons_and_unequal_groups():
    gids = [1, 1, 2, 2, 2, 2, 2]
    assert class_diversity(list(range(7)), gids).tolist() == [1.0] * 7


def test_class_diversity_length_mismatch():
    with pytest.raises(ValueError, match="3 labels but 2 group_ids"):
        class_diversity([0, 1, 2], ["a", "a"])


def test_floor_and_multiplicative_fusion_golden():
    # Div = [0, 0.05, 0.5, 1]; Norm = max(Div, 0.1) = [0.1, 0.1, 0.5, 1]; R = q * Norm
    q = np.array([1.0, 1.0, 0.5, 0.0])
    d = np.array([0.0, 0.05, 0.5, 1.0])
    np.testing.assert_allclose(fuse_multiplicative(q, d), [0.1, 0.1, 0.25, 0.0])
    # lambda = 0.5: R = q * (0.5 + 0.5 * Norm) = [0.55, 0.55, 0.375, 0]
    np.testing.assert_allclose(fuse_multiplicative(q, d, 0.5), [0.55, 0.55, 0.375, 0.0])
    # lambda = 0: quality only, whatever the diversity
    np.testing.assert_allclose(fuse_multiplicative(q, d, 0.0), q)


def test_multiplicative_rejects_negative_quality_with_advice():
    with pytest.raises(ValueError, match="quality_transform"):
        fuse_multiplicative(np.array([-2.2, 1.0]), np.array([1.0, 1.0]))


def test_group_min_shift_keeps_duplicates_from_winning():
    # Signed RM scores: a duplicate (low Div) must not gain from a negative score.
    q = shift_to_group_min(np.array([-3.0, -2.0, -2.0]), ["g"] * 3)  # -> [0, 1, 1]
    r = fuse_multiplicative(q, np.array([1.0, 0.5, 0.5]))
    assert r.tolist() == [0.0, 0.5, 0.5]


def test_additive_variants():
    q, d = np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(fuse_additive(q, d, 0.5), [1.0, 0.5, 1.5, 0.5])
    z = fuse_additive_zscore(q, d, ["a", "a", "b", "b"], 1.0)
    # group a: z(q) = [1, -1], z(d) = [-1, 1] -> 0, 0; group b: z(q) = [1, -1], d const -> [1, -1]
    np.testing.assert_allclose(z, [0.0, 0.0, 1.0, -1.0], atol=1e-5)


def test_sigmoid_maps_into_unit_interval():
    out = sigmoid(np.array([-100.0, 0.0, 100.0]))
    assert out[0] < 1e-6 and out[1] == 0.5 and out[2] > 1 - 1e-6


def test_nan_quality_is_an_error():
    with pytest.raises(ValueError, match="NaN"):
        fuse_additive(np.array([np.nan]), np.array([1.0]))


def test_grpo_equals_darling_at_weight_zero():
    rng = np.random.default_rng(0)
    q, d = rng.random(16), rng.random(16)
    gids = np.repeat(np.arange(4), 4)
    grpo = Reward(name="grpo", diversity_weight=0.0)
    darling0 = Reward(name="darling", diversity_weight=0.0)
    assert np.array_equal(
        training_reward(q, d, gids, grpo)[0], training_reward(q, d, gids, darling0)[0]
    )
    assert np.array_equal(training_reward(q, d, gids, grpo)[0], q)


def test_training_reward_transform():
    spec = Reward(quality_transform=shift_to_group_min)
    rewards, metrics = training_reward(np.array([-1.0, 1.0]), np.array([1.0, 1.0]), [0, 0], spec)
    assert rewards.tolist() == [0.0, 2.0] and metrics["quality_mean"] == 0.0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # darling: q * max(Div, 0.1) = [1 * 0.1, 0.5 * 0.5]
        ([], [0.1, 0.25]),
        # floor 0.3 through the single knob reward.diversity_floor: [0.3, 0.25]
        (["reward.diversity_floor=0.3"], [0.3, 0.25]),
        # grpo: lambda = 0 -> quality only
        (["reward=grpo"], [1.0, 0.5]),
        # additive: q + Div = [1.0, 1.0]
        (["reward=additive"], [1.0, 1.0]),
        # affine transform 2q - 0.5 = [1.5, 0.5], then x max(Div, 0.1) = [0.15, 0.25]
        (["reward/quality_transform=affine", "reward.quality_transform.scale=2",
          "reward.quality_transform.offset=-0.5"], [0.15, 0.25]),
    ],
)
def test_reward_presets_build_the_documented_rule(compose_cfg, overrides, expected):
    from darling.train.build import build_reward

    reward = build_reward(compose_cfg("model=tiny", *overrides).reward)
    rewards, _ = training_reward(np.array([1.0, 0.5]), np.array([0.0, 0.5]), [0, 0], reward)
    np.testing.assert_allclose(rewards, expected)


def _advantages_loop(rewards, gids, std_normalize, eps=1e-6):
    out = []
    for i, g in enumerate(gids):
        members = [rewards[j] for j in range(len(gids)) if gids[j] == g]
        if len(members) == 1:
            out.append(0.0)
            continue
        mean = sum(members) / len(members)
        std = math.sqrt(sum((m - mean) ** 2 for m in members) / (len(members) - 1))  # ddof=1
        out.append((rewards[i] - mean) / (std + eps) if std_normalize else rewards[i] - mean)
    return out


@pytest.mark.parametrize("std_normalize", [False, True])
def test_advantages_vectorised_matches_loop(std_normalize):
    rng = np.random.default_rng(1)
    gids = rng.integers(0, 7, size=40).tolist()  # unequal groups, some of size 1, shuffled
    rewards = rng.normal(size=40)
    adv, _ = group_advantages(torch.tensor(rewards), gids, std_normalize)
    np.testing.assert_allclose(adv.numpy(), _advantages_loop(rewards.tolist(), gids, std_normalize),
                               atol=1e-9)


def test_advantage_golden_and_group_of_one():
    adv, metrics = group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.2, 0.2]), [0, 0, 1, 2, 2])
    assert adv.tolist() == [0.5, -0.5, 0.0, 0.0, 0.0]
    assert metrics["zero_std_groups"] == pytest.approx(2 / 3)


def test_grpo_std_uses_the_unbiased_std_golden():
    # group [1, 0, 0, 1]: mean 0.5, squared deviations 4 x 0.25 = 1, unbiased var 1/3,
    # std 0.57735 -> A = +-0.5 / 0.57735 = +-0.866025 (population std 0.5 would give +-1)
    # group of one [0.3]: A = 0
    adv, _ = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.3]), [0, 0, 0, 0, 1],
                              std_normalize=True, eps=0.0)
    np.testing.assert_allclose(adv.numpy(), [0.8660254, -0.8660254, -0.8660254, 0.8660254, 0.0],
                               rtol=1e-6)
    assert np.isfinite(adv.numpy()).all()


def test_ppo_loss_hand_computed():
    # seq 0, A=+1: rho=1.5 -> max(-1.5, -1.2) = -1.2; rho=0.5 -> max(-0.5, -0.8) = -0.5
    # seq 1, A=-1: rho=1.1 -> max(1.1, 1.1) = 1.1; second token masked
    # token-mean = (-1.2 - 0.5 + 1.1) / 3 = -0.2
    logp_new = torch.log(torch.tensor([[1.5, 0.5], [1.1, 1.0]]))
    loss, metrics = ppo_clip_loss(
        logp_new, torch.zeros(2, 2), torch.tensor([1.0, -1.0]), torch.tensor([[1, 1], [1, 0]])
    )
    assert loss.item() == pytest.approx(-0.2)
    # only the first token's clipped term wins the max -> clip fraction 1/3
    assert metrics["clip_frac"] == pytest.approx(1 / 3)


def test_ppo_dual_clip_bounds_negative_advantage():
    # A=-1, rho=5: max(5, 1.2) = 5, dual clip min(5, 3) = 3; without dual clip: 5
    logp = torch.log(torch.tensor([[5.0]]))
    args = (logp, torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1))
    assert ppo_clip_loss(*args)[0].item() == pytest.approx(3.0)
    assert ppo_clip_loss(*args, dual_clip=None)[0].item() == pytest.approx(5.0)


def _ppo_loop(logp_new, logp_old, adv, mask, eps=0.2, c=3.0):
    total, count = 0.0, 0
    for b in range(len(adv)):
        for t in range(len(logp_new[b])):
            if not mask[b][t]:
                continue
            rho = math.exp(logp_new[b][t] - logp_old[b][t])
            loss = max(-adv[b] * rho, -adv[b] * min(max(rho, 1 - eps), 1 + eps))
            if adv[b] < 0:
                loss = min(loss, -adv[b] * c)
            total += loss
            count += 1
    return total / count


def test_ppo_loss_vectorised_matches_loop():
    g = torch.Generator().manual_seed(0)
    logp_new, logp_old = -torch.rand(6, 9, generator=g) * 3, -torch.rand(6, 9, generator=g) * 3
    adv = torch.randn(6, generator=g)
    mask = (torch.rand(6, 9, generator=g) > 0.3).long()
    loss, _ = ppo_clip_loss(logp_new, logp_old, adv, mask)
    expected = _ppo_loop(logp_new.tolist(), logp_old.tolist(), adv.tolist(), mask.tolist())
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_k3_kl_golden():
    # d = logp_ref - logp_new = log 2 -> k3 = 2 - log 2 - 1 = 0.3069; d = 0 -> 0
    logp_new = torch.zeros(1, 2)
    logp_ref = torch.tensor([[math.log(2.0), 0.0]])
    assert k3_kl(logp_new, logp_ref, torch.ones(1, 2)).item() == pytest.approx(
        (1 - math.log(2)) / 2
    )
    assert k3_kl(logp_new, logp_new, torch.ones(1, 2)).item() == 0.0


def test_truncated_importance_weights_hand_computed():
    # pi_train / pi_sampler = 0.5 / 0.25 = 2 -> capped at 1.5; 0.2 / 0.4 = 0.5 -> 0.5;
    # equal -> 1
    logp_train = torch.log(torch.tensor([[0.5, 0.2, 0.3]]))
    logp_sampler = torch.log(torch.tensor([[0.25, 0.4, 0.3]]))
    weights = truncated_importance_weights(logp_train, logp_sampler, cap=1.5)
    torch.testing.assert_close(weights, torch.tensor([[1.5, 0.5, 1.0]]))
    with pytest.raises(ValueError, match="cap must be > 0"):
        truncated_importance_weights(logp_train, logp_sampler, cap=0)


def test_ppo_loss_with_token_weights_hand_computed():
    # the test above's tokens, weighted 0.5, 2, 3 (masked): (-1.2 * 0.5 - 0.5 * 2 + 1.1) / 3
    logp_new = torch.log(torch.tensor([[1.5, 0.5], [1.1, 1.0]]))
    weights = torch.tensor([[0.5, 2.0], [1.0, 3.0]])
    loss, _ = ppo_clip_loss(logp_new, torch.zeros(2, 2), torch.tensor([1.0, -1.0]),
                            torch.tensor([[1, 1], [1, 0]]), token_weights=weights)
    assert loss.item() == pytest.approx((-0.6 - 1.0 + 1.1) / 3)


def test_token_weights_are_constants_of_the_gradient():
    logp_new = torch.log(torch.tensor([[1.5, 0.5]])).requires_grad_()
    weights = torch.tensor([[0.5, 2.0]], requires_grad=True)
    loss, _ = ppo_clip_loss(logp_new, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2),
                            token_weights=weights)
    loss.backward()
    assert weights.grad is None
    # token 0 is clipped (no gradient); token 1: d(-w * rho) / d logp = -w * rho / 2 tokens
    torch.testing.assert_close(logp_new.grad, torch.tensor([[0.0, -2.0 * 0.5 / 2]]))


def test_sampler_gap_hand_computed():
    # d = log 2, -log 2, masked 5: |d| mean = log 2, max = log 2;
    # k3 = ((2 - log 2 - 1) + (0.5 + log 2 - 1)) / 2 = 0.25
    logp_train = torch.tensor([[math.log(2.0), 0.0, 5.0]])
    logp_sampler = torch.tensor([[0.0, math.log(2.0), 0.0]])
    gap = sampler_gap(logp_train, logp_sampler, torch.tensor([[1, 1, 0]]))
    assert gap["logp_diff_mean"] == pytest.approx(math.log(2.0))
    assert gap["logp_diff_max"] == pytest.approx(math.log(2.0))
    assert gap["kl"] == pytest.approx(0.25)
    same = sampler_gap(logp_train, logp_train, torch.ones(1, 3))
    assert same == {"logp_diff_mean": 0.0, "logp_diff_max": 0.0, "kl": 0.0}


def test_masked_token_mean_empty_mask():
    assert masked_token_mean(torch.ones(2, 2), torch.zeros(2, 2)).item() == 0.0


def test_aggregators_shapes_and_length_checks():
    texts = ["the cat sat on the mat", "the cat sat on the mat", "a dog ran in the park today"]
    gids = [0, 0, 0]
    for agg in (NgramDiversity(), NoDiversity(), PartitionDiversity()):
        kwargs = {"labels": np.array([0, 0, 1])} if isinstance(agg, PartitionDiversity) else {}
        scores, metrics = agg(texts, gids, **kwargs)
        assert scores.shape == (3,) and isinstance(metrics, dict)
        with pytest.raises(ValueError, match="group_ids"):
            agg(texts, gids[:2], **kwargs)
    scores, _ = NgramDiversity()(texts, gids)
    assert scores[0] == 0.0 and scores[2] == 1.0  # duplicates share every 4-gram


def test_embedding_diversity_golden_values():
    """``diversity=embedding``: the mean cosine distance to the rest of the group, clipped to 1.
    Group g: a=(1,0), b=(1,1) (not unit: normalised), c=(0,2): d(a,b) = d(b,c) = 1 - 1/sqrt(2),
    d(a,c) = 1 -> a, c: (1 - 1/sqrt(2) + 1) / 2 = 1 - sqrt(2)/4; b: 1 - 1/sqrt(2). Group h:
    opposite vectors, distance 2 -> clipped to 1. Group k: one rollout, nothing to differ from
    -> 0. The encoder is called once, on the whole batch."""
    vectors = {"a": (1, 0), "b": (1, 1), "c": (0, 2), "d": (1, 0), "e": (-3, 0), "f": (0, 1)}
    calls = []

    def embed(texts):
        calls.append(texts)
        return np.array([vectors[t] for t in texts], dtype=np.float64)

    scores, metrics = EmbeddingDiversity(embed)(list("abcdef"), ["g", "g", "g", "h", "h", "k"])
    half_root2 = np.sqrt(2) / 2
    expected = [1 - half_root2 / 2, 1 - half_root2, 1 - half_root2 / 2, 1.0, 1.0, 0.0]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)
    assert scores.dtype == np.float64 and metrics == {} and calls == [list("abcdef")]
    with pytest.raises(ValueError, match="group_ids"):
        EmbeddingDiversity(embed)(["a", "b"], ["g"])
