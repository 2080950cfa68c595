"""FSDP2 on two CPU processes (gloo): the same training as one process, a bit-exact resume after
SIGTERM, a full safetensors policy, evaluation from it and from a sharded checkpoint, one
stand-in vLLM engine per rank; plus the chunked log-probabilities against the plain formula.

The training runs are shared between the tests (module-scoped fixtures) to keep the time low.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from darling.logprobs import response_logprobs
from darling.models import load_policy
from darling.models.checkpoints import is_sharded_checkpoint, load_checkpoint
from darling.models.frozen import weights_fingerprint
from darling.models.tiny import build_tiny_llama
from darling.train.run_dir import resolve_checkpoint
from darling.train.strategies import decoder_layers
from darling.train.validation import validate
from tests.conftest import ROOT, TINY, metric_rows, save_tiny_checkpoint
from tests.helpers import length_quality

STEPS = 3
FSDP = ["trainer=fsdp", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.strategy.param_dtype=null", "data.prompts_per_step=1",
        f"trainer.max_steps={STEPS}", "trainer.checkpoint_every_n_steps=100",
        "optim.grad_clip=0.05"]
SINGLE = ["data.prompts_per_step=2", f"trainer.max_steps={STEPS}",
          "trainer.checkpoint_every_n_steps=100", "optim.grad_clip=0.05"]
PARAM_ATOL = 1e-5
"""Two ranks and one process differ only in float summation order (batch padding, the gradient
reduce-scatter). After 3 AdamW steps at lr 1e-3 the layers agree to < 1e-6 and the embedding to
4.7e-6 (measured: Adam's m / (sqrt(v) + eps) magnifies relative differences of near-zero gradients
of rarely seen token rows); one step taken differently moves weights by ~1e-3."""


def _same_threads(env):
    """``env`` (default: this process's) with one CPU thread per process unless it sets
    ``OMP_NUM_THREADS``, so that every run compared bit for bit here computes with the same
    thread count from its start, however it is launched (Lightning would give one process per
    node the whole machine and each of two local processes half of it: other thread counts sum
    the same products in another order, ~1e-6 apart)."""
    return {"OMP_NUM_THREADS": "1", **(os.environ if env is None else env)}


def _train(run_dir, *overrides, env=None, check=True):
    out = subprocess.run(
        [sys.executable, "train.py", *TINY, f"hydra.run.dir={run_dir}", *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=_same_threads(env),
    )
    if check:
        assert out.returncode == 0, out.stderr[-4000:]
    return out


def _records(run_dir):
    records = {}
    for path in sorted((run_dir / "rollouts").glob("rank*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            records.setdefault((r["step"], r["group_id"]), []).append(r)
    return records


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    _train(root / "sharded", *FSDP)
    _train(root / "single", *SINGLE)
    return root


# -- one process vs two sharded ranks ---------------------------------------------------------
@pytest.mark.slow
def test_two_sharded_ranks_train_like_one_process(runs):
    sharded, single = runs / "sharded", runs / "single"
    a, b = load_file(sharded / "policy" / "model.safetensors"), load_file(
        single / "policy" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=PARAM_ATOL, msg=name)
    rows_a, rows_b = metric_rows(sharded), metric_rows(single)
    assert len(rows_a) == len(rows_b) == STEPS
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key in ("loss/grad_norm", "reward/mean", "advantage/abs_mean", "loss/total"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-5, abs=1e-7), key
    # clipping was active: a rank clipping by its own shard's norm would have trained otherwise
    assert all(float(r["loss/grad_norm"]) > 0.05 for r in rows_a)
    recs_a, recs_b = _records(sharded), _records(single)
    # group g of the prompt stream: step s samples groups 2s and 2s + 1, one per rank when sharded
    expected = [(s, 2 * s + r) for s in range(STEPS) for r in (0, 1)]
    assert sorted(recs_a) == sorted(recs_b) == expected
    for key in recs_b:
        for ra, rb in zip(recs_a[key], recs_b[key], strict=True):
            assert ra["response"] == rb["response"]
            for field in ("quality", "reward", "advantage"):
                assert ra[field] == pytest.approx(rb[field], rel=1e-6, abs=1e-7), field


@pytest.mark.slow
def test_lora_with_kl_on_two_sharded_ranks_trains_like_one_process(tmp_path):
    """LoRA under FSDP2 on a checkpoint read from disk (each rank reads its own rows of the
    safetensors files; one process uses from_pretrained): sharded adapters, the KL reference as
    the base with adapters disabled, the merged policy written by rank 0. The KL term is on, so
    a wrong reference shows."""
    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint", seed=5)
    lora = ["model.lora.enabled=true", "model.lora.r=4", "optim.kl_coef=0.1",
            "model.source=pretrained", f"model.path={checkpoint}"]
    _train(tmp_path / "sharded", *FSDP, *lora)
    _train(tmp_path / "single", *SINGLE, *lora)
    a = load_file(tmp_path / "sharded" / "policy" / "model.safetensors")
    b = load_file(tmp_path / "single" / "policy" / "model.safetensors")
    assert a.keys() == b.keys() and not any("lora" in k for k in a)  # merged
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=PARAM_ATOL, msg=name)
    rows_a, rows_b = metric_rows(tmp_path / "sharded"), metric_rows(tmp_path / "single")
    assert len(rows_a) == len(rows_b) == STEPS
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key in ("loss/grad_norm", "loss/total"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-5, abs=1e-8), key
        # k3 of log-prob differences d ~ 0.05: float32 log-probs (|log p| ~ 10, rounding ~1e-6)
        # carry an absolute error of about |d| * 1e-6 = 5e-8 into it (measured: 2.2e-8)
        assert float(ra["loss/kl"]) == pytest.approx(float(rb["loss/kl"]), abs=1e-7)
    assert float(rows_a[-1]["loss/kl"]) > 0  # the adapters moved away from the reference


# -- several nodes --------------------------------------------------------------------------------
def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_single_process_nodes_under_torchrun_train_like_one_node_of_two(runs, tmp_path):
    """``torchrun --nnodes 2 --nproc-per-node 1`` twice on localhost (static rendezvous on
    127.0.0.1, gloo), ``trainer.num_nodes=2 trainer.devices=1``: Lightning takes the ranks from
    torchrun's environment and the run equals ``runs/sharded`` (one node, two processes) bit for
    bit."""
    run = tmp_path / "nodes"
    overrides = [o for o in FSDP if o != "trainer.devices=2"]
    overrides += ["trainer.devices=1", "trainer.num_nodes=2"]
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
             "--nproc-per-node", "1", "--node-rank", str(node), "--master-addr", "127.0.0.1",
             "--master-port", str(port), "train.py", *TINY, f"hydra.run.dir={run}", *overrides],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=_same_threads(None),
        )
        for node in (0, 1)
    ]
    for node in nodes:
        out, _ = node.communicate(timeout=900)
        assert node.returncode == 0, out[-4000:]
    a = load_file(runs / "sharded" / "policy" / "model.safetensors")
    b = load_file(run / "policy" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    keys = ["step", "reward/mean", "loss/total", "loss/grad_norm"]
    assert [[r[k] for k in keys] for r in metric_rows(runs / "sharded")] == [
        [r[k] for k in keys] for r in metric_rows(run)]
    assert _records(run) == _records(runs / "sharded")


# -- checkpoints: SIGTERM mid-run, resume, compare -----------------------------------------------
def sigterm_quality(prompts, completions, rows, **kwargs):
    """``length_quality``; with ``DARLING_TEST_SIGTERM`` set, the call of step 1 sends SIGTERM to
    rank 0 (which Lightning forwards to rank 1) while rank 1 waits in Python, not inside a
    collective: a deterministic stand-in for a scheduler's preemption signal."""
    sigterm_quality.calls = getattr(sigterm_quality, "calls", 0) + 1
    if os.environ.get("DARLING_TEST_SIGTERM") and sigterm_quality.calls == 2:
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            time.sleep(3)
    return length_quality(prompts, completions, rows)


@pytest.mark.slow
def test_sharded_checkpoint_resumes_bit_exactly_after_sigterm(runs, tmp_path):
    killed = tmp_path / "killed"
    quality = ["quality.path=tests.test_fsdp:sigterm_quality"]
    _train(killed, *FSDP, *quality, env={**os.environ, "DARLING_TEST_SIGTERM": "1"}, check=False)
    last = killed / "checkpoints" / "last.ckpt"
    assert is_sharded_checkpoint(last), sorted(p.name for p in last.parent.iterdir())
    assert not list(last.parent.glob(".*"))  # no partial save left behind
    assert load_checkpoint(last)["global_step"] == 2
    assert resolve_checkpoint("last", killed) == resolve_checkpoint("auto", killed) == str(last)

    _train(killed, *FSDP, *quality, "ckpt_path=last")
    a = load_file(runs / "sharded" / "policy" / "model.safetensors")
    b = load_file(killed / "policy" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    keys = ["step", "reward/mean", "loss/total", "loss/grad_norm"]
    assert [[r[k] for k in keys] for r in metric_rows(runs / "sharded")] == [
        [r[k] for k in keys] for r in metric_rows(killed)]


# -- the saved policy and evaluation ------------------------------------------------------------
@pytest.mark.slow
def test_policy_and_sharded_checkpoint_load_and_evaluate(runs):
    from transformers import AutoModelForCausalLM

    from darling.eval.run import evaluate
    from tests.test_evaluation import EVAL_TINY, compose_eval

    run = runs / "sharded"
    last = run / "checkpoints" / "last.ckpt"
    assert is_sharded_checkpoint(last)
    weights = load_checkpoint(last)["state_dict"]
    policy = AutoModelForCausalLM.from_pretrained(run / "policy")
    assert set(policy.state_dict()) == {k.removeprefix("policy.") for k in weights}
    for name, value in policy.state_dict().items():
        assert torch.equal(value, weights[f"policy.{name}"]), name

    from_policy = evaluate(compose_eval(*EVAL_TINY, f"ckpt={run}"), run / "eval-policy")
    from_shards = evaluate(compose_eval(*EVAL_TINY, f"ckpt={last}"), run / "eval-ckpt")
    assert from_policy["k"] == from_shards["k"] == 4.0
    gen = [json.loads(line)["response"] for line in
           (run / "eval-policy" / "generations.jsonl").read_text().splitlines()]
    assert gen == [json.loads(line)["response"] for line in
                   (run / "eval-ckpt" / "generations.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_policy_written_in_shards_loads_in_transformers_and_evaluate(runs, tmp_path):
    """The same run as ``runs/sharded`` with 1 MB shards: the embedding (49152 x 64 x 4 B =
    12.6 MB) gets a file of its own, the other 0.2 MB (layers, final norm) the second; every
    weight is in the index, and both loaders read the same weights."""
    from transformers import AutoModelForCausalLM

    from darling.eval.run import evaluate
    from darling.models.safetensors_shards import INDEX_FILE
    from tests.test_evaluation import EVAL_TINY, compose_eval

    run = tmp_path / "pieces"
    _train(run, *FSDP, "save.max_shard_gb=0.001")
    policy_dir = run / "policy"
    index = json.loads((policy_dir / INDEX_FILE).read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) == 2 and not (policy_dir / "model.safetensors").exists()
    assert all((policy_dir / f).is_file() for f in files)
    assert json.loads((policy_dir / "config.json").read_text())["dtype"] == "float32"
    whole = load_file(runs / "sharded" / "policy" / "model.safetensors")
    pieces = {}
    for f in files:
        pieces.update(load_file(policy_dir / f))
    assert pieces.keys() == whole.keys() == set(index["weight_map"])
    for name in whole:
        assert torch.equal(pieces[name], whole[name]), name
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    for name, value in model.state_dict().items():
        assert torch.equal(value, whole["model.embed_tokens.weight" if name == "lm_head.weight"
                                        else name]), name
    evaluate(compose_eval(*EVAL_TINY, f"ckpt={run}"), tmp_path / "eval-pieces")
    evaluate(compose_eval(*EVAL_TINY, f"ckpt={runs / 'sharded'}"), tmp_path / "eval-whole")
    responses = [[json.loads(line)["response"] for line in
                  (tmp_path / d / "generations.jsonl").read_text().splitlines()]
                 for d in ("eval-pieces", "eval-whole")]
    assert responses[0] == responses[1] and len(responses[0]) > 0


@pytest.mark.slow
def test_policy_is_written_in_the_model_dtype_or_float32_on_request(tmp_path):
    """model.dtype=bfloat16 trains on float32 master weights and writes bfloat16 by default."""
    _train(tmp_path / "bf16", *FSDP, "model.dtype=bfloat16", "trainer.max_steps=1")
    config = json.loads((tmp_path / "bf16" / "policy" / "config.json").read_text())
    weights = load_file(tmp_path / "bf16" / "policy" / "model.safetensors")
    assert config["dtype"] == "bfloat16"
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}


# -- one stand-in vLLM engine per rank ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("lora", [[], ["model.lora.enabled=true", "model.lora.r=4"]],
                         ids=["full", "lora"])
def test_each_rank_engine_holds_the_full_current_policy_after_every_sync(tmp_path, compose_cfg,
                                                                         lora):
    """With LoRA the engine gets the sharded adapters folded into the gathered base weights."""
    stand_in = tmp_path / "site" / "vllm"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text(
        "from types import SimpleNamespace\n"
        "from tests.test_vllm_engine import FakeLLM as LLM\n"
        "__version__ = '0.32.0'\n"
        "def SamplingParams(**kw):\n    return SimpleNamespace(**kw)\n"
    )
    (stand_in / "platforms.py").write_text(  # a GPU platform: it has sleep mode
        "from types import SimpleNamespace\n"
        "current_platform = SimpleNamespace(device_name='cuda',\n"
        "                                   is_sleep_mode_available=lambda: True,\n"
        "                                   is_cpu=lambda: False)\n"
    )
    log = tmp_path / "engine-log"
    log.mkdir()
    env = {**os.environ, "FAKE_VLLM_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT),
                                          os.environ.get("PYTHONPATH", "")])}
    run = tmp_path / "run"
    _train(run, *FSDP, "trainer.max_steps=2", "rollout=vllm", "rollout.dtype=float32",
           "data.max_prompt_tokens=128",
           "rollout.n_per_prompt=4", "rollout.max_new_tokens=6", *lora, env=env)
    logs = [[json.loads(line) for line in (log / f"rank{r}.jsonl").read_text().splitlines()]
            for r in (0, 1)]
    assert [len(x) for x in logs] == [3, 3]  # bind + one sync after each of the 2 steps
    for a, b in zip(*logs, strict=True):
        # every rank holds the same, whole weights (float64 sums: reduction order may differ)
        assert a["fingerprint"] == pytest.approx(b["fingerprint"], rel=1e-12)
    final = load_file(run / "policy" / "model.safetensors")
    initial = load_policy(compose_cfg("model=tiny").model, seed=0)[0].state_dict()
    final["lm_head.weight"] = final["model.embed_tokens.weight"]
    assert logs[0][0]["fingerprint"] == pytest.approx(weights_fingerprint(initial.values()))
    assert logs[0][-1]["fingerprint"] == pytest.approx(
        weights_fingerprint(final[k] for k in initial))
    assert logs[0][1]["fingerprint"] != logs[0][0]["fingerprint"] != logs[0][2]["fingerprint"]


# -- configs ----------------------------------------------------------------------------------
def test_the_users_command_brings_the_scale_path_and_fails_at_once_without_a_gpu(compose_cfg):
    cfg = compose_cfg("model=llama8b", "reward=darling")
    assert cfg.trainer.strategy._target_ == "darling.train.strategies.fsdp2"
    assert cfg.rollout.engine == "vllm" and cfg.trainer.devices == -1
    assert cfg.trainer.precision == "32-true" and cfg.trainer.strategy.param_dtype == "bfloat16"
    assert compose_cfg("model=llama8b", "trainer=cpu", "rollout=hf").rollout.engine == "hf"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU.*trainer=cpu rollout=hf"):
            validate(cfg)


def test_unbuilt_combinations_are_refused(compose_cfg):
    cfg = compose_cfg(*TINY, *FSDP, "trainer.precision=bf16-true", "optim.optimizer=adamw_8bit")
    with pytest.raises(ValueError) as err:
        validate(cfg)
    assert "trainer.precision=bf16-true" in str(err.value)
    assert "adamw_8bit with trainer=fsdp" in str(err.value)


@pytest.mark.slow
def test_multirun_of_multi_process_runs_on_the_basic_launcher_is_refused(tmp_path):
    out = subprocess.run(
        [sys.executable, "train.py", "-m", *TINY, "trainer=ddp_cpu", "seed=0,1",
         f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode != 0
    assert "sweeps" in out.stderr and "basic launcher" in out.stderr
    assert not list(tmp_path.rglob("checkpoints"))


@pytest.mark.slow
def test_gpu_check_script_runs_end_to_end_on_the_cpu(tmp_path):
    out = subprocess.run(["bash", "bench/gpu_check.sh", "--cpu"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "OUT": str(tmp_path),
                                                      "PYTHON": sys.executable})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["train_steps"] == 3 and result["train_step_s_median"] > 0
    assert result["rollout_hf"]["tokens_per_s"] > 0


def test_gpu_check_configuration_composes_and_only_lacks_the_gpu(compose_cfg):
    """The overrides bench/gpu_check.sh passes on the GPU machine."""
    cfg = compose_cfg("model=qwen2_5_0_5b_shape", "trainer=fsdp", "trainer.accelerator=gpu",
                      "trainer.devices=1", "rollout=hf", "classifier=answer", "quality=callable",
                      "quality.path=tests.helpers:length_quality", "optim.micro_batch_size=8")
    assert cfg.trainer.strategy.param_dtype == "bfloat16" and cfg.model.dtype == "bfloat16"
    if torch.cuda.is_available():
        validate(cfg)
    else:
        with pytest.raises(ValueError) as err:
            validate(cfg)
        assert str(err.value).count("\n  ") == 1 and "no GPU" in str(err.value)


def test_qwen2_5_shape_has_the_real_parameter_count():
    from transformers import Qwen2Config

    from darling.models.shaped import QWEN2_5_0_5B

    with torch.device("meta"):
        from transformers import Qwen2ForCausalLM

        model = Qwen2ForCausalLM(Qwen2Config(**QWEN2_5_0_5B))
    assert sum(p.numel() for p in model.parameters()) == 494_032_768  # Qwen2.5-0.5B's count


# -- pieces -------------------------------------------------------------------------------------
def test_decoder_layers_come_from_no_split_modules():
    model = build_tiny_llama(100)
    assert decoder_layers(model) == list(model.model.layers)
    model._no_split_modules = ["NoSuchLayer"]
    with pytest.raises(ValueError, match="_no_split_modules"):
        decoder_layers(model)


def _plain_logprobs(model, ids, attn, start, temperature):
    """The formula before chunking: a full-vocabulary float32 log_softmax."""
    position_ids = (attn.long().cumsum(-1) - 1).clamp_min(0)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids).logits
    logits = logits[:, start - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, ids[:, start:].unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("chunk", [1, 3, 256])
def test_chunked_logprobs_equal_the_full_log_softmax(chunk):
    model = build_tiny_llama(300, seed=0)
    ids = torch.randint(0, 300, (3, 12), generator=torch.Generator().manual_seed(0))
    attn = torch.ones_like(ids)
    attn[0, :3] = 0  # a left-padded prompt
    expected = _plain_logprobs(model, ids, attn, 5, 0.7)
    got = response_logprobs(model, ids, attn, 5, 0.7, chunk=chunk)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    grad_expected = torch.autograd.grad(expected.sum(), model.lm_head.weight)[0]
    grad_got = torch.autograd.grad(
        response_logprobs(model, ids, attn, 5, 0.7, chunk=chunk).sum(), model.lm_head.weight)[0]
    torch.testing.assert_close(grad_got, grad_expected, rtol=1e-4, atol=1e-6)
