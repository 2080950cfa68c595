"""Training on the tiny model: parameters move, resume is exact, bad input fails clearly."""

import csv
import json
import re
import subprocess
import sys
import zipfile

import pytest
import torch
from omegaconf import open_dict

from darling.models import load_policy
from darling.models.frozen import restore_policy
from darling.train.run import train
from darling.train.run_dir import resolve_checkpoint
from darling.train.validation import validate
from tests.conftest import ROOT, TINY


def _metrics(run_dir):
    """Rows of the CSV metrics file that hold a training step."""
    with open(run_dir / "metrics.csv") as f:
        return [row for row in csv.DictReader(f) if row.get("reward/mean")]


def test_two_steps_change_the_parameters(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY)
    train(cfg, tmp_path)
    initial, _ = load_policy(cfg.model, seed=cfg.seed)
    trained = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    changed = [
        name
        for name, p in initial.state_dict().items()
        if not torch.equal(p, trained["state_dict"][f"policy.{name}"])
    ]
    assert changed, "no parameter changed after two training steps"
    assert trained["darling"]["rollout_step"] == 2 and trained["global_step"] == 2
    metrics = _metrics(tmp_path)
    assert len(metrics) == 2
    rollouts = [json.loads(line) for line in (tmp_path / "rollouts" / "rank0.jsonl").open()]
    for step, row in enumerate(metrics):
        # each row summarises its step's 2 prompts x 4 rollouts, as rollouts/rank0.jsonl has them
        mine = [r for r in rollouts if r["step"] == step]
        assert len(mine) == 8 and int(row["step"]) == step
        value = {key: float(v) for key, v in row.items() if v != ""}
        assert value["reward/quality_mean"] == pytest.approx(
            sum(r["quality"] for r in mine) / 8, rel=1e-12)
        assert value["reward/mean"] == pytest.approx(sum(r["reward"] for r in mine) / 8,
                                                     rel=1e-12)
        classes = {}
        for r in mine:
            classes.setdefault(r["group_id"], set()).add(r["class"])
        assert value["diversity/classes_per_group"] == sum(map(len, classes.values())) / 2
        assert value["loss/total"] == value["loss/policy"]  # kl_coef = 0: nothing added
        assert value["loss/ratio_mean"] == 1.0  # on-policy: pi_theta / pi_old = 1 per token
        assert value["time/generate"] > 0
        assert value["rollout/tokens_per_s"] == pytest.approx(
            value["rollout/tokens"] / value["time/generate"], rel=1e-12)
    assert (tmp_path / "policy" / "model.safetensors").is_file()
    assert (tmp_path / "config.yaml").is_file()


@pytest.mark.parametrize("model", [[], ["model.lora.enabled=true", "model.lora.r=4"]],
                         ids=["full", "lora"])
def test_resume_is_exact(compose_cfg, tmp_path, model):
    straight = tmp_path / "straight"
    train(compose_cfg(*TINY, *model, "trainer.max_steps=4"), straight)
    resumed = tmp_path / "resumed"
    train(compose_cfg(*TINY, *model, "trainer.max_steps=2"), resumed)
    train(compose_cfg(*TINY, *model, "trainer.max_steps=4", "ckpt_path=last"), resumed)
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 4
    assert b["darling"]["rollout_step"] == 4
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    state_a = a["optimizer_states"][0]["state"]
    state_b = b["optimizer_states"][0]["state"]
    for key in state_a:
        assert torch.equal(state_a[key]["exp_avg"], state_b[key]["exp_avg"])
    cols = ["reward/mean", "loss/total", "diversity/classes_per_group", "rollout/step"]
    assert [[r[c] for c in cols] for r in _metrics(straight)] == [
        [r[c] for c in cols] for r in _metrics(resumed)
    ]


def test_lora_checkpoints_leave_out_the_base_and_check_it_on_resume(compose_cfg, tmp_path):
    lora = ["model.lora.enabled=true", "model.lora.r=4"]
    cfg = compose_cfg(*TINY, *lora)
    train(cfg, tmp_path / "run")
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    saved = checkpoint["state_dict"]
    assert saved and all("lora_" in k for k in saved if k.endswith(".weight")), sorted(saved)

    policy, _ = load_policy(cfg.model, seed=cfg.seed)  # what evaluate.py does with a .ckpt
    restore_policy(policy, checkpoint)
    for name, value in saved.items():
        assert torch.equal(policy.state_dict()[name.removeprefix("policy.")], value), name

    ckpt = f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}"
    other_base = compose_cfg(*TINY, *lora, "seed=1", "trainer.max_steps=3", ckpt)
    with pytest.raises(ValueError, match=r"other settings.*\n  seed: 0 -> 1"):
        train(other_base, tmp_path / "other")
    # resumed anyway, the other frozen base weights are still found
    with pytest.raises(ValueError, match="other frozen"):
        train(compose_cfg(*TINY, *lora, "seed=1", "trainer.max_steps=3", ckpt,
                          "resume_any_config=true"), tmp_path / "other")


def test_fresh_run_refuses_to_overwrite(compose_cfg, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="ckpt_path=last"):
        resolve_checkpoint(None, tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resolve_checkpoint("missing.ckpt", tmp_path)


def test_auto_resumes_when_a_checkpoint_exists_else_starts_fresh(tmp_path):
    assert resolve_checkpoint("auto", tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    zipfile.ZipFile(last, "w").close()
    assert resolve_checkpoint("auto", tmp_path) == str(last)


def test_corrupt_checkpoint_is_a_clear_error(compose_cfg, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="last.ckpt"):
        train(compose_cfg(*TINY, "ckpt_path=last"), tmp_path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("reward.diversity_weight=1.5", "reward.diversity_weight"),
        ("reward.fusion._target_=darling.fusion.fuse_sum", "reward.fusion._target_"),
        ("reward.quality_transform._partial_=false", "reward.quality_transform"),
        ("rollout.temperature=0", "rollout.temperature"),
        ("optim.mini_batches=100", "optim.mini_batches"),
        ("seed=-1", "seed=-1"),
        ("rollout.top_p=0.9", "rollout.top_p"),
        ("model.lora.dropout=0.1", "model.lora.dropout"),
        ("rollout.sleep_level=3", "rollout.sleep_level"),
    ],
)
def test_invalid_values_name_the_key(compose_cfg, override, message):
    with pytest.raises(ValueError, match=message):
        validate(compose_cfg(*TINY, override))


def test_typo_in_a_key_fails_at_compose(compose_cfg):
    with pytest.raises(Exception, match="diversity_wieght"):
        compose_cfg("reward.diversity_wieght=0.5")


def test_missing_extra_is_named(compose_cfg, monkeypatch):
    import importlib.util

    cfg = compose_cfg(*TINY, "rollout=vllm")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # vLLM absent, whether installed or not
                        lambda name, *a: None if name == "vllm" else find_spec(name, *a))
    with pytest.raises(ImportError, match=r"darling\[gpu\]' on a GPU machine, or bash "
                                          r"scripts/install_cpu.sh --vllm"):
        validate(cfg)


def test_single_rollout_per_prompt_is_refused(compose_cfg):
    # issue 23.9: a group of one has advantage 0, so the run would learn nothing
    with pytest.raises(ValueError, match=r"rollout.n_per_prompt=1: must be >= 2.*advantage"):
        validate(compose_cfg(*TINY, "rollout.n_per_prompt=1"))


def test_failing_quality_function_is_reported(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "quality.path=tests.helpers:raising_quality")
    with pytest.raises(Exception, match="raising_quality"):
        train(cfg, tmp_path)


def test_unknown_model_source(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY)
    with open_dict(cfg):
        cfg.model.source = "nope"
    with pytest.raises(ValueError, match="model.source"):
        train(cfg, tmp_path)


@pytest.mark.slow
def test_train_py_subprocess(tmp_path):
    out = subprocess.run(
        [sys.executable, "train.py", *TINY, "trainer.max_steps=1", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "metrics.csv").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_unknown_model_name_lists_the_options(compose_cfg):
    with pytest.raises(Exception, match="smollm2_135m"):
        compose_cfg("model=llama_nope")


def _uninstalled(monkeypatch, module):
    """``module`` looks uninstalled to ``importlib.util.find_spec`` (``require_module``)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == module else real(name, *a))


def test_missing_wandb_is_named(compose_cfg, monkeypatch):
    _uninstalled(monkeypatch, "wandb")
    with pytest.raises(ImportError, match=r"darling\[wandb\]"):
        validate(compose_cfg(*TINY, "logger=wandb"))


def test_wandb_offline_run_resumes_its_run_with_config_and_tags(compose_cfg, tmp_path,
                                                                 monkeypatch):
    pytest.importorskip("wandb")
    from darling.wandb_runs import wandb_run_id

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    run = tmp_path / "run"
    train(compose_cfg(*TINY, "logger=wandb", "trainer.max_steps=1"), run)
    train(compose_cfg(*TINY, "logger=wandb", "trainer.max_steps=2", "ckpt_path=last"), run)
    runs = sorted(run.rglob("offline-run-*"))
    expected = wandb_run_id(run, "tiny-darling-w1.0-seed0")
    # offline-run-<time>-<id>, with a "-1" suffix when both runs started in the same second
    pattern = rf"offline-run-\d{{8}}_\d{{6}}-{re.escape(expected)}(-\d+)?"
    assert len(runs) == 2 and all(re.fullmatch(pattern, p.name) for p in runs), runs
    logged = (runs[-1] / f"run-{expected}.wandb").read_bytes()  # offline: one binary log
    assert b"n_per_prompt" in logged and b"diversity_weight" in logged  # the resolved config
    assert b"reward=darling" in logged and b"w=1.0" in logged  # the arm's tags
    assert wandb_run_id(tmp_path / "other", "tiny-darling-w1.0-seed0") != expected


def test_training_with_the_answer_set_partition(compose_cfg, tmp_path):
    tiny = [o for o in TINY if not o.startswith("classifier=")]
    train(compose_cfg(*tiny, "classifier=answer_set", "trainer.max_steps=1"), tmp_path)
    (row,) = _metrics(tmp_path)
    assert 1 <= float(row["diversity/classes_per_group"]) <= 4
    assert "partition/pairs" not in row or not row["partition/pairs"]  # no pair was scored


def test_on_policy_update_reuses_the_gradient_forward(compose_cfg, tmp_path, monkeypatch):
    """One epoch, one mini-batch: logp_old taken from the gradient forward (no separate no-grad
    forward) gives the same losses, metrics and weights as the separate forward."""
    from darling.train.module import DarlingModule

    calls = {"n": 0}
    logprobs = DarlingModule._logprobs

    def counting(self, *args):
        calls["n"] += 1
        return logprobs(self, *args)

    monkeypatch.setattr(DarlingModule, "_logprobs", counting)
    overrides = [*TINY, "optim.micro_batch_size=3"]  # 8 rollouts -> 3 micro-batches
    train(compose_cfg(*overrides), tmp_path / "shortcut")
    shortcut_calls, calls["n"] = calls["n"], 0
    monkeypatch.setattr(DarlingModule, "_on_policy", lambda self: False)
    train(compose_cfg(*overrides), tmp_path / "separate")
    assert (shortcut_calls, calls["n"]) == (2 * 3, 2 * 6)  # 2 steps x micro-batches x forwards

    a = torch.load(tmp_path / "shortcut" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "separate" / "checkpoints" / "last.ckpt", weights_only=True)
    # Equal to rounding, not bit for bit: the no-grad and the gradient forward may round
    # differently, and AdamW's m / (sqrt(v) + eps) magnifies that on the near-zero gradients of
    # rarely seen embedding rows (one full-suite run gave > 1e-6 on the embedding; a step taken
    # differently moves weights by ~1e-3). The tolerance is test_fsdp's PARAM_ATOL.
    for name, value in a["state_dict"].items():
        torch.testing.assert_close(value, b["state_dict"][name], rtol=0, atol=1e-5,
                                   msg=lambda message, name=name: f"{name}: {message}")
    cols = ["loss/policy", "loss/total", "loss/clip_frac", "loss/approx_kl", "loss/grad_norm",
            "rollout/logp_mean", "reward/mean"]
    for row_a, row_b in zip(_metrics(tmp_path / "shortcut"), _metrics(tmp_path / "separate"),
                            strict=True):
        for c in cols:
            assert float(row_a[c]) == pytest.approx(float(row_b[c]), rel=1e-6, abs=1e-7), c


def test_dropout_in_the_model_keeps_the_on_policy_ratio_at_one(compose_cfg, tmp_path, monkeypatch):
    import darling.train.run as run

    def with_dropout(spec, seed=0):
        policy, tokenizer = load_policy(spec, seed=seed)
        policy.config.attention_dropout = 0.5
        for layer in policy.model.layers:
            layer.self_attn.attention_dropout = 0.5
        return policy, tokenizer

    monkeypatch.setattr(run, "load_policy", with_dropout)
    train(compose_cfg(*TINY, "trainer.max_steps=1"), tmp_path)
    (row,) = _metrics(tmp_path)
    # one epoch, one mini-batch: the update starts at the sampling policy, so ratio == 1 exactly
    assert float(row["loss/approx_kl"]) == 0.0
    assert float(row["loss/clip_frac"]) == 0.0


def test_disable_dropout_zeroes_modules_attributes_and_config():
    from darling.train.policy import disable_dropout

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.3))
    net.config = type("Config", (), {})()
    net.config.hidden_dropout = 0.1
    net[0].attention_dropout = 0.2
    assert disable_dropout(net) == 3
    assert net[1].p == 0.0 and net[0].attention_dropout == 0.0 and net.config.hidden_dropout == 0.0


def test_parquet_prompts_without_pandas_name_the_extra(compose_cfg, monkeypatch):
    _uninstalled(monkeypatch, "pandas")
    with pytest.raises(ImportError, match=r"prompts\.parquet.*darling\[parquet\]"):
        validate(compose_cfg(*TINY, "data.train_path=prompts.parquet"))


def test_loggers_do_not_import_the_run_module():
    code = (
        "import sys, importlib.util, darling.loggers as loggers\n"
        "importlib.util.find_spec = lambda name, *a: None\n"
        "try:\n    loggers.wandb_logger('.', 'p', 'g', 'n')\nexcept ImportError:\n    pass\n"
        "print('darling.train.run' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
