"""The memory plan against numbers worked out by hand."""

import pytest

from darling.memory_plan import GIB, ModelShape, PlanSettings, activation_bytes, memory_plan

# Llama-3.1-8B: 8.03e9 parameters, 32 layers, hidden 4096, vocab 128256. Its largest FSDP unit
# is the root: the untied embedding and head, 2 x 128256 x 4096 = 1,050,673,152 parameters (a
# decoder layer has 218M); the largest tensor is one of them, 525,336,576 elements.
LLAMA8B = ModelShape(params=8_030_000_000, trainable=8_030_000_000, layers=32, hidden=4096,
                     vocab=128_256, largest_unit=1_050_673_152, largest_tensor=525_336_576)


def test_sharded_training_state_is_16_bytes_per_parameter_over_the_ranks():
    plan = memory_plan(LLAMA8B, PlanSettings(ranks=8, load_bytes=2, compute_bytes=2))
    update = plan.phases["update"]
    # 8.03e9 x 4 B / 8 ranks = 4.015e9 B each for weights and gradients, 8.03e9 B for AdamW
    assert update["master weights (fp32)"] == 4_015_000_000
    assert update["gradients (fp32)"] == 4_015_000_000
    assert update["AdamW moments (fp32)"] == 8_030_000_000
    assert update["KL reference (fp32)"] == 0
    # two gathered root units (embedding + head, 1.05e9 parameters) in bf16: 2 x 1.05e9 x 2 B
    assert update["gathered units"] == 4 * 1_050_673_152
    # load, rank 0: max(8.03e9 x 2 B read, 8.03e9 x 4 B / 8 shards) = 16.06e9 B, plus its
    # bf16 slice of the largest unit: 1,050,673,152 x 2 B / 8 = 262,668,288 B
    assert plan.phases["load"] == {"rank 0's read of the weights": 16_060_000_000,
                                   "slices of the unit being filled": 262_668_288}
    assert plan.device_bytes is None and plan.over == [] and plan.advice == []
    # save, rank 0: the state and one 5e9 B shard (the default max_shard_gb, above the largest
    # float32 weight, 525,336,576 x 4 B = 2.1e9)
    assert plan.phases["save"] == {**{k: update[k] for k in update if "fp32" in k},
                                   "one shard of the policy": 5_000_000_000}


def test_reading_own_rows_from_files_loads_shards_plus_one_slice():
    plan = memory_plan(LLAMA8B, PlanSettings(ranks=8, load_bytes=2, read_files=True))
    # every rank: its float32 shards, 8.03e9 x 4 B / 8, plus its bf16 rows of the largest
    # tensor, 525,336,576 x 2 B / 8
    assert plan.phases["load"] == {"own shards read from the files": 4_015_000_000,
                                   "one slice in flight": 131_334_144}


def test_a_weight_larger_than_a_shard_is_a_shard_of_its_own():
    plan = memory_plan(LLAMA8B, PlanSettings(ranks=8, max_shard_bytes=10**9, save_bytes=2))
    # the embedding in bf16, 525,336,576 x 2 B, is above the 1e9 B limit
    assert plan.phases["save"]["one shard of the policy"] == 1_050_673_152


def test_activation_estimate_follows_korthikanti_without_the_score_term():
    shape = ModelShape(params=10, trainable=10, layers=4, hidden=8, vocab=100, largest_unit=5,
                       largest_tensor=5)
    s = PlanSettings(micro_batch=2, seq_len=16, response_len=4)
    # 4 layers x 34 x (2 x 16 tokens) x 8 hidden = 34816; logits 2 x 4 x 100 x 2 = 1600;
    # one float32 chunk and its gradient: 2 x 256 x 100 x 4 = 204800
    assert activation_bytes(shape, s) == 34816 + 1600 + 204800
    checkpointed = PlanSettings(micro_batch=2, seq_len=16, response_len=4,
                                gradient_checkpointing=True)
    # 4 layer inputs of 2 x 32 x 8 = 2048 B, plus one layer recomputed: 34 x 32 x 8 = 8704
    assert activation_bytes(shape, checkpointed) == 2048 + 8704 + 1600 + 204800


def test_over_the_device_names_the_knobs_largest_saving_first():
    s = PlanSettings(ranks=2, load_bytes=2, compute_bytes=2, engine_fraction=0.3,
                     device_bytes=80 * GIB, reward_model_params=8_000_000_000, micro_batch=4,
                     seq_len=2048, response_len=1024, gradient_checkpointing=True)
    plan = memory_plan(LLAMA8B, s)
    # update: 16 B x 8.03e9 / 2 = 64.24e9 B of state alone, plus the replicated 16e9 B RM
    assert plan.peak("update") > 80 * GIB and "update" in plan.over
    assert plan.phases["rollout"]["vLLM weights + KV cache"] == int(0.3 * 80 * GIB)
    assert plan.advice[0].startswith("trainer.strategy.cpu_offload=true")  # 64.24e9 B
    assert plan.advice[1].startswith("model.lora.enabled=true")  # 48.18e9 B
    assert any(a.startswith("quality.placement=offload") for a in plan.advice)
    assert any(a.startswith("more ranks (4 instead of 2") for a in plan.advice)
    roomy = memory_plan(LLAMA8B, PlanSettings(**{**s.__dict__, "ranks": 32,
                                                 "reward_model_placement": "offload"}))
    assert roomy.over == [] and roomy.advice == []
    assert "update:" in plan.table() and "device: 80.00 GiB" in plan.table()


def test_unsharded_ranks_hold_everything():
    plan = memory_plan(LLAMA8B, PlanSettings(ranks=8, sharded=False))
    assert plan.phases["update"]["master weights (fp32)"] == 4 * 8_030_000_000
    assert plan.phases["update"]["gathered units"] == 0


@pytest.mark.parametrize("offload", [True, False])
def test_cpu_offload_moves_the_training_state_off_the_device(offload):
    plan = memory_plan(LLAMA8B, PlanSettings(ranks=8, cpu_offload=offload))
    assert (plan.phases["update"]["AdamW moments (fp32)"] == 0) == offload


def test_model_shape_of_the_tiny_model_built_on_meta():
    from darling.models.loading import params_on_meta
    from darling.models.tiny import build_tiny_llama
    from darling.train.plan import model_shape

    with params_on_meta():
        model = build_tiny_llama(1000)
    shape = model_shape(model)
    # a layer: q 64x128, k and v 64x64, o 128x64, gate and up 64x128, down 128x64, two norms of
    # 64 = 8192 + 2 x 4096 + 8192 + 3 x 8192 + 128 = 49280; the root: the tied 1000 x 64
    # embedding and the final norm: 64064
    assert shape.layers == 2 and shape.hidden == 64 and shape.vocab == 1000
    assert shape.params == shape.trainable == 2 * 49280 + 64064
    assert shape.largest_unit == 64064 and shape.largest_tensor == 64000


def test_the_reward_model_placement_reaches_the_plan(compose_cfg):
    from darling.train.plan import plan_settings

    cfg = compose_cfg("model=tiny", "quality=callable", "quality.path=tests.helpers:length_quality")
    assert plan_settings(cfg, None, ranks=1).reward_model_params == 0
    rm = compose_cfg("model=tiny", "quality=reward_model", "quality.path=/nonexistent",
                     "quality.placement=offload")
    s = plan_settings(rm, None, ranks=1)  # an unreadable config: left out, with a warning
    assert s.reward_model_placement == "offload" and s.reward_model_params == 0
    assert s.reward_model_bytes == 2  # bfloat16
