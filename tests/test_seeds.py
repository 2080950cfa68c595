"""One seeding rule for both engines and for evaluation: no two samples of a run share a seed."""

import pytest

from darling.rollout.base import EVAL_STREAM, MAX_RUN_SEED, TRAIN_STREAM, group_seeds


def _sample_seeds(run_seed, groups, n, stream):
    """Every per-sample seed vLLM derives: the i-th sample of a request seeded s gets s + i."""
    return [s + i for s in group_seeds(run_seed, groups, n, stream) for i in range(n)]


@pytest.mark.parametrize("n", [1, 4, 8, 64])
def test_no_two_samples_of_a_run_share_a_seed(n):
    groups = range(20_000)  # 20k prompts: far more than a run of the paper samples
    seeds = []
    for stream in (TRAIN_STREAM, EVAL_STREAM):
        seeds += _sample_seeds(3, groups, n, stream)
    assert len(set(seeds)) == len(seeds)
    # the old rule (seed * 1_000_003 + g, samples seed + i) collided between neighbouring groups
    assert all(0 <= s < 2**63 for s in seeds)


def test_run_seeds_use_disjoint_ranges_and_the_largest_fits_63_bits():
    a = set(_sample_seeds(0, range(1000), 8, TRAIN_STREAM))
    b = set(_sample_seeds(1, range(1000), 8, TRAIN_STREAM))
    assert not a & b
    top = _sample_seeds(MAX_RUN_SEED, [2**33 - 1], 8, EVAL_STREAM)  # the last group
    assert max(top) < 2**63


def test_seeds_are_deterministic_and_independent_of_batching():
    assert group_seeds(7, [5, 6, 7], 8) == group_seeds(7, [5, 6, 7], 8)
    assert group_seeds(7, [5, 6, 7], 8)[1:] == group_seeds(7, [6, 7], 8)


@pytest.mark.parametrize(
    ("args", "message"),
    [((-1, [0], 8), "seed=-1"), ((MAX_RUN_SEED + 1, [0], 8), "seed="),
     ((0, [-1], 8), "group -1"), ((0, [2**40], 8), "seed space"), ((0, [0], 0), "n_per_prompt")],
)
def test_out_of_range_is_a_clear_error(args, message):
    with pytest.raises(ValueError, match=message):
        group_seeds(*args)
