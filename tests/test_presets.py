"""The paper's two recipes as presets (conf/experiment/, issue 22): each composes the settings of
darling-spec.md, each runs scaled down on the CPU (the tiny policy, a reward model and a
classifier built in code, a few prompts and tokens), and the paper's models without a preset
fail at once naming it."""

import json
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from darling.eval.run import check_eval_config, evaluate
from darling.train.run import train
from darling.train.validation import validate
from tests.conftest import ROOT

SCALED_DOWN = [
    "model=tiny",
    "trainer=cpu",
    "rollout=hf",
    "data.global_prompts_per_step=2",
    "rollout.n_per_prompt=4",
    "rollout.max_new_tokens=6",
    "trainer.enable_progress_bar=false",
    "logger=csv",
]
"""A preset shrunk to seconds on one core: everything else stays the preset's."""

CHAT_PROMPTS = [
    {"prompt": [{"role": "system", "content": "You write poems."},
                {"role": "user", "content": "Write a haiku about autumn."}]},
    {"prompt": [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Suggest a name for a cat."}]},
    {"prompt": [{"role": "user", "content": "Give me a tip for learning to cook."}]},
]
"""WildChat-style open prompts in TRL's conversational format."""

MATH_PROBLEMS = [
    {"problem": "What is $2 + 3$?", "answer": "5", "solution": "2 + 3 = 5."},
    {"problem": "Compute $\\frac{1}{2} + \\frac{1}{4}$.", "answer": "\\frac{3}{4}",
     "solution": "..."},
    {"problem": "What is $7 \\times 6$?", "answer": "42", "solution": "..."},
]
"""DeepScaleR-style rows (deepscaler.json is a JSON array of these)."""


def _spec_values(cfg):
    return {
        "n": cfg.rollout.n_per_prompt, "prompts": cfg.data.global_prompts_per_step,
        "tokens": cfg.rollout.max_new_tokens, "lr": cfg.optim.lr, "kl": cfg.optim.kl_coef,
        "epochs": cfg.optim.ppo_epochs, "mini_batches": cfg.optim.mini_batches,
        "temperature": cfg.rollout.temperature, "top_p": cfg.rollout.top_p,
        "floor": cfg.reward.diversity_floor, "std": cfg.reward.std_normalize,
        "weight": cfg.reward.diversity_weight,
    }


def test_paper_chat_composes_the_spec_settings(compose_cfg):
    cfg = compose_cfg("+experiment=paper_chat")
    # spec 1: n = 8 at temperature 1; 64 prompts/step; 1024 tokens; lr 1e-6; KL 0.001 (1.8);
    # one optimiser step per rollout batch; floor 0.1 (1.4); no std division (1.6)
    assert _spec_values(cfg) == {
        "n": 8, "prompts": 64, "tokens": 1024, "lr": 1e-6, "kl": 0.001, "epochs": 1,
        "mini_batches": 1, "temperature": 1.0, "top_p": 1.0, "floor": 0.1, "std": False,
        "weight": 1.0}
    assert cfg.model.path == "meta-llama/Llama-3.1-8B-Instruct"
    assert cfg.quality._target_ == "darling.quality.RewardModelQuality"
    assert cfg.classifier.threshold == 0.32 and "cross_encoder" in cfg.classifier._target_
    # spec 6: signed RM scores are shifted before the multiplication, not multiplied raw
    assert cfg.reward.fusion._target_.endswith("fuse_multiplicative")
    assert cfg.reward.quality_transform._target_.endswith("shift_to_group_min")
    assert cfg.diversity._target_.endswith("PartitionDiversity") and not cfg.diversity.correct_only
    assert cfg.rollout.engine == "vllm" and "fsdp2" in cfg.trainer.strategy._target_


def test_paper_math_composes_the_spec_settings(compose_cfg):
    cfg = compose_cfg("+experiment=paper_math")
    # spec 1, 3: 256 prompts x 8; 4 optimiser steps per rollout batch; 8192 tokens; lr 1e-6;
    # no KL for math
    assert _spec_values(cfg) == {
        "n": 8, "prompts": 256, "tokens": 8192, "lr": 1e-6, "kl": 0.0, "epochs": 1,
        "mini_batches": 4, "temperature": 1.0, "top_p": 1.0, "floor": 0.1, "std": False,
        "weight": 1.0}
    assert cfg.model.path == "Qwen/Qwen3-4B-Base"
    assert cfg.quality._target_ == "darling.quality.MathVerifyQuality"
    assert cfg.reward.quality_transform._target_.endswith("identity")  # 0/1 needs no shift
    assert not cfg.diversity.correct_only  # the authors' shipped recipe: all n rollouts
    # the correct-only partition is one override away (spec 3)
    assert compose_cfg("+experiment=paper_math", "reward=darling_correct").diversity.correct_only


def test_train_py_cfg_job_prints_the_preset():
    out = subprocess.run(
        [sys.executable, "train.py", "+experiment=paper_math", "--cfg", "job"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    cfg = OmegaConf.create(out.stdout)
    assert (cfg.optim.mini_batches, cfg.rollout.max_new_tokens, cfg.experiment) == (
        4, 8192, "paper_math")


@pytest.mark.parametrize(("model", "preset"), [("llama8b", "paper_chat"),
                                               ("qwen3_4b_base", "paper_math")])
def test_paper_model_on_the_builtin_task_names_its_preset(compose_cfg, model, preset):
    with pytest.raises(ValueError, match=rf"\+experiment={preset} data.train_path="):
        validate(compose_cfg(f"model={model}", "reward=darling"))


def test_users_exact_command_fails_at_once_naming_the_preset(tmp_path):
    out = subprocess.run(
        [sys.executable, "train.py", "model=llama8b", "reward=darling",
         f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode != 0
    assert "+experiment=paper_chat" in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "config.yaml").exists()  # refused before the run started


def test_preset_without_its_inputs_says_what_to_pass(compose_cfg):
    with pytest.raises(ValueError) as error:
        validate(compose_cfg("+experiment=paper_chat"))
    message = str(error.value)
    for needed in ("+experiment=paper_chat needs its prompts: pass data.train_path",
                   "quality.path is required", "classifier.model is required"):
        assert needed in message


def test_global_batch_must_divide_among_processes(compose_cfg):
    cfg = compose_cfg("+experiment=paper_math", *SCALED_DOWN, "trainer=ddp_cpu",
                      "data.global_prompts_per_step=3", "data.train_path=x.jsonl")
    with pytest.raises(ValueError, match="global_prompts_per_step=3 must be a multiple of the 2"):
        validate(cfg)


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    """A tiny random Llama reward model (one logit) with the SmolLM2 tokenizer and its chat
    template, saved as a sequence-classification checkpoint."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from darling.models.smollm2 import smollm2_path

    path = tmp_path_factory.mktemp("rm")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, num_labels=1,
        pad_token_id=tokenizer.pad_token_id, max_position_embeddings=512))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def modernbert(tmp_path_factory):
    """A 2-layer ModernBERT two-class pair classifier with the MiniLM WordPiece tokenizer."""
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertForSequenceClassification

    from darling.partition.encoder import default_encoder_path

    path = tmp_path_factory.mktemp("modernbert")
    torch.manual_seed(0)
    model = ModernBertForSequenceClassification(ModernBertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, pad_token_id=0, cls_token_id=101,
        sep_token_id=102, bos_token_id=101, eos_token_id=102, num_labels=2))
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(default_encoder_path()).save_pretrained(path)
    return str(path)


def _eval_cfg(*overrides):
    from hydra import compose, initialize_config_dir

    from darling.eval.config import register_eval_configs
    from tests.conftest import CONF

    register_eval_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="evaluate", overrides=list(overrides))


def _rollouts(run_dir):
    return [json.loads(line) for line in (run_dir / "rollouts" / "rank0.jsonl").open()]


def test_paper_chat_runs_scaled_down(compose_cfg, tmp_path, reward_model, modernbert,
                                    monkeypatch):
    from darling.rollout.hf import HFRollout

    sampled = []
    generate = HFRollout.generate

    def recording_generate(self, prompts, *args, **kwargs):
        sampled.extend(prompts)
        return generate(self, prompts, *args, **kwargs)

    monkeypatch.setattr(HFRollout, "generate", recording_generate)
    prompts = tmp_path / "wildchat.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in CHAT_PROMPTS))
    cfg = compose_cfg(
        "+experiment=paper_chat", *SCALED_DOWN, f"data.train_path={prompts}",
        f"quality.path={reward_model}", "quality.dtype=float32",
        f"classifier.model={modernbert}", "trainer.max_steps=1",
    )
    train(cfg, tmp_path / "run")
    records = _rollouts(tmp_path / "run")
    assert len(records) == 2 * 4  # 2 prompts x 4 rollouts
    for gid in {r["group_id"] for r in records}:
        rewards = [r["reward"] for r in records if r["group_id"] == gid]
        qualities = [r["quality"] for r in records if r["group_id"] == gid]
        # the reward-model score is shifted to the group minimum before x Norm(Div): the
        # worst rollout of each group gets 0, none gets a negative reward
        assert min(rewards) == pytest.approx(0.0) and min(rewards) >= 0
        assert len(set(qualities)) > 1  # the RM scored each rollout
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert saved.optim.kl_coef == 0.001 and saved.data.prompts_per_step == 2
    # the policy continues each row's whole conversation, its own system message included
    assert len(sampled) == 2 and all(p.rstrip().endswith("assistant") for p in sampled)
    systems = {r["prompt"][-1]["content"]: r["prompt"][0]["content"] for r in CHAT_PROMPTS
               if r["prompt"][0]["role"] == "system"}
    checked = 0
    for text in sampled:  # two of the three rows bring a system message: one at least is sampled
        for user, system in systems.items():
            if user in text:
                assert system in text
                checked += 1
            else:
                assert system not in text
    assert checked >= 1


def test_paper_math_runs_scaled_down(compose_cfg, tmp_path):
    problems = tmp_path / "deepscaler.json"
    problems.write_text(json.dumps(MATH_PROBLEMS))
    cfg = compose_cfg(
        "+experiment=paper_math", *SCALED_DOWN, f"data.train_path={problems}",
        "trainer.max_steps=4",  # 4 optimiser steps = one rollout batch in 4 mini-batches
    )
    train(cfg, tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4 and ckpt["darling"]["rollout_step"] == 1
    records = _rollouts(tmp_path / "run")
    assert len(records) == 8 and {r["quality"] for r in records} <= {0.0, 1.0}
    # its evaluation, +eval=paper_math: N = 128 at T 0.6, top_p 0.95 (spec 3), shrunk to k = 4
    full = _eval_cfg("+eval=paper_math")
    assert (full.eval.k, full.rollout.temperature, full.rollout.top_p,
            full.rollout.max_new_tokens) == (128, 0.6, 0.95, 8192)
    assert full.data.prompt_template == cfg.data.prompt_template  # as in training
    with pytest.raises(ValueError, match=r"\+eval=paper_math needs its prompts"):
        check_eval_config(full)
    summary = evaluate(_eval_cfg(
        "+eval=paper_math", f"ckpt={tmp_path / 'run'}", f"data.eval_path={problems}",
        "eval.k=4", "rollout.max_new_tokens=4", f"eval.out_dir={tmp_path / 'eval'}",
    ), tmp_path / "eval")
    assert summary["prompts"] == 3 and "pass@4" in summary


# --- the verifiable regime on the CPU: +experiment=math_cpu, +eval=math_cpu ------------------


def test_math_task_files_are_reproducible_checked_and_disjoint(tmp_path):
    from darling.tasks.data import build_math
    from darling.tasks.prompts import DATA_DIR, load_prompts

    build_math.main(["--out", str(tmp_path)])
    for name in ("math_train.jsonl", "math_heldout.jsonl"):
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes()
    train_rows, heldout = load_prompts("builtin:math_train"), load_prompts("builtin:math_heldout")
    assert (len(train_rows), len(heldout)) == (180, 30)

    def sums(rows):
        out = set()
        for row in rows:
            a, b = (int(x) for x in row.prompt.split("What is ")[1].split("?")[0].split(" + "))
            assert row.ground_truth == str(a + b) and row.kind == "ground_truth"
            out.add(frozenset((a, b)))
        return out

    assert not sums(train_rows) & sums(heldout)  # no held-out sum, in either order, is trained


def test_math_cpu_composes(compose_cfg):
    cfg = compose_cfg("+experiment=math_cpu")
    assert cfg.quality._target_ == "darling.quality.MathVerifyQuality"
    assert cfg.data.train_path == "builtin:math_train" and cfg.model.name == "smollm2_135m"
    assert cfg.optim.kl_coef == 0.0 and not cfg.diversity.correct_only
    assert compose_cfg("+experiment=math_cpu", "reward=darling_correct").diversity.correct_only


def test_math_cpu_trains_and_evaluates_pass_at_k(tmp_path):
    """``python train.py +experiment=math_cpu`` (one tiny step), then ``evaluate.py
    +eval=math_cpu`` on held-out sums (k shrunk from 64 to 4, two prompts)."""
    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "train.py", "+experiment=math_cpu", "model=tiny", "trainer.max_steps=1",
         "rollout.n_per_prompt=4", "rollout.max_new_tokens=4", "data.prompts_per_step=2",
         "trainer.enable_progress_bar=false", f"hydra.run.dir={run}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(_rollouts(run)) == 8
    full = _eval_cfg("+eval=math_cpu")
    cfg = _eval_cfg("+eval=math_cpu", f"ckpt={run}", "eval.k=4", "eval.max_prompts=2",
                    "rollout.max_new_tokens=4", f"eval.out_dir={tmp_path / 'eval'}")
    assert (full.eval.k, full.rollout.temperature, full.rollout.top_p) == (64, 0.6, 0.95)
    summary = evaluate(cfg, cfg.eval.out_dir)
    assert [k for k in summary if k.startswith("pass@")] == ["pass@1", "pass@2", "pass@4"]
    assert summary["prompts"] == 2 and summary["generations"] == 8
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["prompts"] == "builtin:math_heldout"


def test_resume_of_a_run_from_before_the_new_settings(compose_cfg, tmp_path):
    """Runs started before data.prompt_template, data.global_prompts_per_step, experiment and
    model.paper_preset existed resume: a key their config.yaml lacks may stay at null."""
    from darling.train.resume import check_resume_config

    cfg = compose_cfg("model=tiny")
    old = OmegaConf.to_container(cfg, resolve=True)
    for section, key in (("data", "prompt_template"), ("data", "global_prompts_per_step"),
                         ("model", "paper_preset")):
        del old[section][key]
    del old["experiment"]
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(old)))
    check_resume_config(cfg, tmp_path)
    with pytest.raises(ValueError, match=r"data.prompt_template: '<unset>' -> 'x \{prompt\}'"):
        check_resume_config(compose_cfg("model=tiny", "data.prompt_template='x {prompt}'"),
                            tmp_path)
