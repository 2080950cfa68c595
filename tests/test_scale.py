"""The scale path on two CPU ranks (gloo): the policy built on the meta device and filled from
rank 0's one read of the weights, or by each rank reading its own rows of the checkpoint's
files, equals the single-process model (LoRA and the tied embedding included); the final policy
written in shards loads in ``transformers`` and ``evaluate.py``."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from darling.models.loading import LoraSpec, ModelSpec, load_policy, transformers_model
from tests.conftest import save_tiny_checkpoint

TINY_LORA = ModelSpec(source="tiny", lora=LoraSpec(enabled=True, r=4))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init(rank: int, world: int, port: int):
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    return init_device_mesh("cpu", (world,))


def _close():
    """Leave together: a rank that tears gloo down while the other still sends aborts."""
    dist.barrier()
    dist.destroy_process_group()


def _fill_and_compare(rank: int, world: int, port: int, spec_dict: dict, with_reference: bool,
                      from_files: bool):
    """One rank: build on meta, shard, fill (each rank reading its own rows of the files at
    ``model.path``, or from rank 0's load), compare with the single-process load."""
    import copy

    from darling.train.strategies import (
        ShardingSpec,
        fill_shards,
        fill_shards_from_files,
        is_on_meta,
        shard_model,
    )

    mesh = _init(rank, world, port)
    try:
        spec = OmegaConf.structured(ModelSpec(**spec_dict))
        policy, _ = load_policy(spec, seed=3, on_meta=True)
        assert is_on_meta(policy)
        models = [policy]
        if with_reference:
            models.append(copy.deepcopy(policy).requires_grad_(False))
        for model in models:
            shard_model(model, mesh, ShardingSpec(param_dtype=None))
        if from_files:
            fill_shards_from_files(models, spec.path)
        else:
            full = transformers_model(load_policy(spec, seed=3)[0])
            fill_shards(models, full.state_dict() if rank == 0 else {})
        expected = transformers_model(load_policy(spec, seed=3)[0]).state_dict()
        for model in models:
            root = transformers_model(model)
            assert not is_on_meta(model)
            assert root.lm_head.weight is root.model.embed_tokens.weight  # still tied
            state = root.state_dict()
            assert state.keys() == expected.keys()
            for name, value in state.items():
                full = value.full_tensor() if hasattr(value, "full_tensor") else value
                assert full.dtype == torch.float32, name  # float32 master weights
                assert torch.equal(full, expected[name]), name
                if hasattr(value, "to_local") and value.dim():  # its rows only
                    assert value.to_local().shape[0] <= -(-value.shape[0] // world), name
        if spec.lora.enabled:
            lora = [k for k in expected if "lora_A" in k]
            assert lora and any(expected[k].abs().sum() > 0 for k in lora)  # drawn, not zero
            trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
            assert trainable and all("lora_" in n for n in trainable)
    finally:
        _close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec, with_reference",
    [(ModelSpec(source="tiny"), True), (TINY_LORA, False)],
    ids=["full+reference", "lora"],
)
def test_meta_built_policy_filled_from_rank0_equals_the_single_process_load(spec, with_reference):
    from dataclasses import asdict

    spec_dict = asdict(spec)
    spec_dict["lora"] = LoraSpec(**spec_dict["lora"])
    mp.spawn(_fill_and_compare, args=(2, _free_port(), spec_dict, with_reference, False),
             nprocs=2)


@pytest.mark.slow
@pytest.mark.parametrize("lora, with_reference", [(False, True), (True, False)],
                         ids=["full+reference", "lora"])
def test_each_rank_reads_its_own_rows_and_equals_the_single_process_load(tmp_path, lora,
                                                                         with_reference):
    """Several safetensors files in bfloat16, LoRA adapters drawn from the seed, the tied
    embedding: the sharded model read rank by rank is the model ``from_pretrained`` loads."""
    from dataclasses import asdict

    path = save_tiny_checkpoint(tmp_path / "ckpt", seed=11, dtype=torch.bfloat16)
    assert (tmp_path / "ckpt" / "model.safetensors.index.json").is_file()
    spec = ModelSpec(source="pretrained", path=path, lora=LoraSpec(enabled=lora, r=4))
    spec_dict = asdict(spec)
    spec_dict["lora"] = LoraSpec(**spec_dict["lora"])
    mp.spawn(_fill_and_compare, args=(2, _free_port(), spec_dict, with_reference, True),
             nprocs=2)


def test_stored_tensor_reads_exactly_the_rows_asked(tmp_path):
    from darling.models.safetensors_shards import stored_tensors, write_safetensors

    weights = {"a": torch.arange(35.0).reshape(7, 5).to(torch.bfloat16),
               "b": torch.arange(4, dtype=torch.int64), "c": torch.tensor(2.5)}
    write_safetensors(tmp_path / "model.safetensors", weights)
    stored = stored_tensors(tmp_path)
    assert stored["a"].shape == (7, 5) and stored["a"].dtype == torch.bfloat16
    assert torch.equal(stored["a"].read_rows(2, 5), weights["a"][2:5])
    assert torch.equal(stored["a"].read_rows(6, 10), weights["a"][6:])  # past the end: clipped
    assert stored["a"].read_rows(8, 10).shape == (0, 5)
    assert torch.equal(stored["b"].read_rows(0, 4), weights["b"])
    assert torch.equal(stored["c"].read_rows(0, 1), weights["c"])


def test_params_on_meta_keeps_ties_and_buffers():
    from darling.models.loading import params_on_meta
    from darling.models.tiny import build_tiny_llama

    with params_on_meta():
        model = build_tiny_llama(100)
    assert all(p.is_meta for p in model.parameters())
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert not model.model.rotary_emb.inv_freq.is_meta  # computed at build time, kept real
    torch.testing.assert_close(model.model.rotary_emb.inv_freq,
                               build_tiny_llama(100).model.rotary_emb.inv_freq)


# -- the final policy in pieces -----------------------------------------------------------------
def test_writer_starts_a_new_shard_when_the_next_tensor_would_overflow(tmp_path):
    import json

    from safetensors.torch import load_file

    from darling.models.safetensors_shards import INDEX_FILE, ShardedSafetensorsWriter

    tensors = {
        "a": torch.arange(10, dtype=torch.float32),  # 40 bytes
        "b": torch.ones(10),  # 40 -> 80 <= 100: same shard
        "c": torch.full((4, 5), 2.0),  # 80: 160 > 100, new shard
        "d": torch.arange(5, dtype=torch.bfloat16),  # 10 -> 90 <= 100: with c
    }
    writer = ShardedSafetensorsWriter(tmp_path, max_shard_bytes=100)
    for name, t in tensors.items():
        writer.add(name, t.clone())
    names = writer.close()
    assert names == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                     INDEX_FILE]
    assert writer.peak_shard_bytes == 90 and writer.total_bytes == 170
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert index["metadata"]["total_size"] == 170
    assert index["weight_map"] == {"a": names[0], "b": names[0], "c": names[1], "d": names[1]}
    loaded = {**load_file(tmp_path / names[0]), **load_file(tmp_path / names[1])}
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype and torch.equal(loaded[name], t), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no part files left


def test_writer_told_the_next_size_writes_the_shard_before_it_arrives(tmp_path):
    from darling.models.safetensors_shards import ShardedSafetensorsWriter

    writer = ShardedSafetensorsWriter(tmp_path, max_shard_bytes=100)
    writer.add("a", torch.ones(10), coming=80)  # 40 + 80 > 100: written now, before "b" exists
    assert writer._shard == {} and len(writer._written) == 1
    writer.add("b", torch.ones(20), coming=8)  # 80 + 8 fits: kept
    assert list(writer._shard) == ["b"]
    writer.add("c", torch.ones(2))
    assert writer.close()[:2] == ["model-00001-of-00002.safetensors",
                                  "model-00002-of-00002.safetensors"]
    assert writer.peak_shard_bytes == 88


def test_writer_gives_a_large_tensor_its_own_shard_and_one_shard_a_single_file(tmp_path):
    from safetensors.torch import load_file

    from darling.models.safetensors_shards import ShardedSafetensorsWriter

    big = ShardedSafetensorsWriter(tmp_path / "big", max_shard_bytes=16)
    (tmp_path / "big").mkdir()
    big.add("small", torch.zeros(2))  # 8 bytes
    big.add("large", torch.zeros(8))  # 32 bytes > 16: alone, after small's shard
    assert len(big.close()) == 3
    one = ShardedSafetensorsWriter(tmp_path / "one", max_shard_bytes=10**6)
    (tmp_path / "one").mkdir()
    one.add("w", torch.eye(3))
    assert one.close() == ["model.safetensors"]
    assert torch.equal(load_file(tmp_path / "one" / "model.safetensors")["w"], torch.eye(3))


def _gather_to_rank0(rank: int, world: int, port: int):
    from torch.distributed.tensor import Shard, distribute_tensor

    from darling.models.merged import full_on_rank0

    mesh = _init(rank, world, port)
    try:
        # 5 rows over 2 ranks: torch.chunk gives 3 + 2; 1 row: 1 + 0
        for shape in [(5, 3), (1, 4), (6,)]:
            whole = torch.arange(float(torch.Size(shape).numel())).reshape(shape)
            sharded = distribute_tensor(whole, mesh, [Shard(0)])
            got = full_on_rank0(sharded)
            cast = full_on_rank0(sharded, torch.bfloat16)  # each rank casts its rows, then sends
            if rank == 0:
                assert torch.equal(got, whole), shape
                assert cast.dtype == torch.bfloat16 and torch.equal(cast, whole.bfloat16()), shape
            else:
                assert got is None and cast is None
    finally:
        _close()


def test_sharded_weights_are_gathered_whole_on_rank0_only():
    mp.spawn(_gather_to_rank0, args=(2, _free_port()), nprocs=2)


def test_checkpoint_dir_finds_local_safetensors_and_cached_hub_snapshots(tmp_path, monkeypatch):
    """Where each rank can read its own rows: a directory with safetensors, or a hub id already
    in the local cache (no network); weights built in code, a missing id, or a directory
    without safetensors go through rank 0."""
    import huggingface_hub.constants

    from darling.models.loading import checkpoint_dir
    from darling.models.safetensors_shards import write_safetensors

    def spec(source, path=None):
        return OmegaConf.structured(ModelSpec(source=source, path=path))

    local = tmp_path / "local"
    local.mkdir()
    assert checkpoint_dir(spec("pretrained", str(local))) is None  # no safetensors in it
    write_safetensors(local / "model.safetensors", {"w": torch.ones(2)})
    assert checkpoint_dir(spec("pretrained", str(local))) == local

    cache = tmp_path / "hub"
    snapshot = cache / "models--org--model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (cache / "models--org--model" / "refs").mkdir()
    (cache / "models--org--model" / "refs" / "main").write_text("abc123")
    write_safetensors(snapshot / "model.safetensors", {"w": torch.ones(2)})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert checkpoint_dir(spec("pretrained", "org/model")) == snapshot
    assert checkpoint_dir(spec("pretrained", "org/not-downloaded")) is None
    assert checkpoint_dir(spec("tiny")) is None
