"""Errors a person can act on (issue 23): one line, no traceback, nothing created by a refused
start, no silent resume of another run, no literal key on disk."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from darling.errors import ConfigError, UserError, one_line
from darling.train.run import train
from darling.train.validation import validate
from tests.conftest import CONF, ROOT, TINY

PYTHON_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
PYTHON_ENV.pop("HYDRA_FULL_ERROR", None)


def _run(script, cwd, *overrides, env=None):
    return subprocess.run([sys.executable, str(ROOT / script), *overrides], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env or PYTHON_ENV)


def _tree(path):
    """Every path under ``path`` with its bytes (files) or None (folders)."""
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(path.rglob("*"))}


def _assert_one_line_error(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    assert "Traceback" not in out.stderr + out.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


TRAIN_ERRORS = [
    (["reward.diversity_weight=2"], "reward.diversity_weight=2.0: must be in [0, 1]"),
    (["data.train_path=missing.jsonl"], "missing.jsonl: prompt file not found"),
    (["classifier=saved"], "pass classifier.directory=<value>"),  # 23.4: not classifier.classifier
    (["quality=reward_model"], "pass quality.path=<value>"),  # 23.6: no MissingMandatoryValue
    (["rollout.n_per_prompt=1"], "rollout.n_per_prompt=1: must be >= 2"),  # 23.9
]


@pytest.mark.parametrize(("overrides", "message"), TRAIN_ERRORS)
def test_train_py_user_error_is_one_line_and_creates_nothing(tmp_path, overrides, message):
    # 23.1 and 23.2: before, a traceback under "Error executing job" and runs/<name>/ was left
    out = _run("train.py", tmp_path, "model=tiny", *overrides)
    _assert_one_line_error(out, message)
    assert _tree(tmp_path) == {}


def test_hydra_full_error_still_shows_the_traceback(tmp_path):
    out = _run("train.py", tmp_path, "model=tiny", "reward.diversity_weight=2",
               env={**PYTHON_ENV, "HYDRA_FULL_ERROR": "1"})
    assert out.returncode != 0 and "Traceback" in out.stderr
    assert "ConfigError" in out.stderr
    assert _tree(tmp_path) == {}


def test_a_refused_start_leaves_an_existing_run_as_it_was(tmp_path):
    run = tmp_path / "runs" / "mine"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (run / "train.log").write_text("the run's own story\n")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    before = _tree(tmp_path)
    out = _run("train.py", tmp_path, "model=tiny", "hydra.run.dir=runs/mine")
    _assert_one_line_error(out, "already holds a run", "ckpt_path=last")
    assert _tree(tmp_path) == before


def test_a_bug_keeps_its_traceback(tmp_path):
    out = _run("train.py", tmp_path, *TINY, "quality.path=tests.helpers:raising_quality",
               "hydra.run.dir=run")
    assert out.returncode == 1 and "Traceback" in out.stderr and "judge exploded" in out.stderr
    assert "error: " not in out.stderr.splitlines()[-1]


def test_evaluate_py_errors_are_one_line_and_create_nothing(tmp_path, compose_cfg):
    # a missing ckpt (was an InterpolationResolutionError), a missing compare folder (was
    # created with comparison/ and reported as "no metrics.json under"), a truncated checkpoint
    # (left eval-k2-seed0/ beside it)
    out = _run("evaluate.py", tmp_path, "model=tiny", "ckpt=runs/x/checkpoints/last.ckpt")
    _assert_one_line_error(out, "does not exist")
    out = _run("evaluate.py", tmp_path, "compare=[multirun/nope]")
    _assert_one_line_error(out, "multirun/nope does not exist")
    assert _tree(tmp_path) == {}

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    OmegaConf.save(compose_cfg(*TINY), run / "config.yaml")
    (run / "checkpoints" / "last.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    before = _tree(tmp_path)
    out = _run("evaluate.py", tmp_path, "model=tiny", "eval.k=2", "eval.embedder=null",
               f"ckpt={run / 'checkpoints' / 'last.ckpt'}")
    _assert_one_line_error(out, "not a readable checkpoint")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_a_literal_api_key_is_refused_before_hydra_writes_or_echoes_it(tmp_path, script):
    # 23.11: Hydra echoed the override and, under -m, multirun.yaml kept it
    key = "sk-live-0123456789abcdef"
    judge = ["quality=judge", "quality.base_url=http://127.0.0.1:9/v1", "quality.model=m"]
    for multirun in ([], ["-m"]):
        out = _run(script, tmp_path, *multirun, "model=tiny", *judge,
                   f"quality.api_key_env={key}")
        _assert_one_line_error(out, "NAME of an environment variable")
        assert key not in out.stderr + out.stdout
        assert _tree(tmp_path) == {}


def _compose_with_command_line(*overrides):
    """The training config as ``train.py <overrides>`` composes it (Hydra's node included, so
    that ``run_name`` sees the command line)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides),
                      return_hydra_config=True)
    return OmegaConf.select(cfg, "run_name")


def test_every_readme_training_command_gets_its_own_run_name():
    # 23.3: `python train.py` then `python train.py classifier=answer_set` said "already holds a
    # run"; lines that train the same run (reward=darling is the default) share it
    usage = (ROOT / "README.md").read_text().split("## Usage")[1].split("\n## ")[0]
    lines = [line.split("#")[0].split()[2:] for line in usage.splitlines()
             if line.startswith("python train.py") and " -m " not in line
             and "ckpt_path" not in line and not line.rstrip().endswith("\\")]
    names = {}
    for overrides in lines:
        names.setdefault(_compose_with_command_line(*overrides), []).append(overrides)
    same = [v for v in names.values() if len(v) > 1]
    assert same == [[[], ["reward=darling"]]], same
    assert _compose_with_command_line() == "smollm2_135m-darling-w1.0-seed0"  # old runs resume
    assert _compose_with_command_line("classifier=answer_set") == (
        "smollm2_135m-darling-w1.0-seed0-classifier_answer_set")
    assert _compose_with_command_line("rollout=vllm_cpu") == (
        "smollm2_135m-darling-w1.0-seed0-rollout_vllm_cpu")
    assert _compose_with_command_line("reward=darling_answer") == (
        "smollm2_135m-darling_answer-w1.0-seed0")  # a study's run keeps its name


def test_missing_classifier_encoder_is_named_not_called_corrupt_weights(tmp_path):
    # 23.5
    from darling.partition.base import load_classifier

    folder = tmp_path / "clf"
    shutil.copytree(ROOT / "src" / "darling" / "partition" / "pretrained" / "default", folder)
    config = json.loads((folder / "config.json").read_text())
    config["params"]["encoder"] = str(tmp_path / "no-such-encoder")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="names encoder .*no-such-encoder.*does not exist"):
        load_classifier(folder)


def test_reward_model_path_that_does_not_exist_is_named(tmp_path):
    # 23.6: was a hub "Repo id must be in the form" error
    from darling.quality.reward_model import RewardModelQuality

    with pytest.raises(FileNotFoundError, match="no reward model there"):
        RewardModelQuality(str(tmp_path / "rm"))


def test_a_file_that_is_no_lightning_checkpoint_is_refused(compose_cfg, tmp_path):
    # 23.7: was KeyError: 'pytorch-lightning_version'
    plain = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(UserError, match="not a Lightning training checkpoint"):
        train(compose_cfg(*TINY, f"ckpt_path={plain}"), tmp_path / "run")
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_another_runs_checkpoint_is_refused_unless_asked(compose_cfg, tmp_path):
    # 23.8: a grpo run's checkpoint resumed into a darling run exited 0
    train(compose_cfg(*TINY, "reward=grpo"), tmp_path / "grpo")
    last = tmp_path / "grpo" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)["darling"]["config"]
    assert saved["reward.name"] == "grpo" and "trainer.max_steps" not in saved
    darling = compose_cfg(*TINY, "trainer.max_steps=3", f"ckpt_path={last}")
    with pytest.raises(ConfigError, match=r"other settings.*\n(.*\n)*  reward.name: 'grpo' -> "
                                          r"'darling'(.*\n)*.*resume_any_config=true"):
        train(darling, tmp_path / "darling")
    assert not (tmp_path / "darling" / "config.yaml").exists()
    train(compose_cfg(*TINY, "trainer.max_steps=3", f"ckpt_path={last}",
                      "resume_any_config=true"), tmp_path / "darling")
    assert (tmp_path / "darling" / "policy").is_dir()


def test_an_old_checkpoint_is_checked_against_its_runs_config(compose_cfg, tmp_path):
    train(compose_cfg(*TINY), tmp_path / "old")
    last = tmp_path / "old" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    del checkpoint["darling"]["config"]  # as written before checkpoints held their settings
    torch.save(checkpoint, last)
    with pytest.raises(ConfigError, match=r"differ from .*config.yaml(.*\n)*  seed: 0 -> 1"):
        train(compose_cfg(*TINY, "seed=1", "trainer.max_steps=3", f"ckpt_path={last}"),
              tmp_path / "new")


def test_one_line_joins_a_list_of_problems():
    assert one_line(ValueError("invalid config:\n  a\n  b")) == "invalid config: a; b"


def test_validate_names_the_key_a_saved_classifier_needs(compose_cfg):
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(*TINY, "classifier=saved"))
    assert "classifier.classifier" not in str(info.value)


def test_a_judge_failing_every_row_is_explained_and_writes_no_policy(compose_cfg, tmp_path,
                                                                      caplog):
    # 23.10: a judge answering 307 gave 48 missing scores, exit 0 and a "trained" policy; the
    # run (2 steps) was shorter than max_failed_steps=3, so the streak never stopped it
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    from darling.errors import NoQualitySignal

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Redirect)
    Thread(target=server.serve_forever, daemon=True).start()
    base = [o for o in TINY if not o.startswith("quality")]
    cfg = compose_cfg(*base, "quality=judge", "quality.model=m", "quality.retries=1",
                      f"quality.base_url=http://127.0.0.1:{server.server_port}/v1",
                      "quality.api_key_env=null", "quality.max_workers=1")
    with pytest.raises(NoQualitySignal, match=r"16 x HTTP 307.*all 2 step\(s\)"):
        train(cfg, tmp_path)
    server.shutdown()
    assert not (tmp_path / "policy").exists()
    warnings = [r.getMessage() for r in caplog.records if "HTTP 307" in r.getMessage()]
    assert len(warnings) == 1 and "redirect to http://127.0.0.1:9/elsewhere" in warnings[0]


def _evaluation(path, run, max_prompts=4, **protocol):
    path.mkdir(parents=True)
    record = {"run": run, "eval": {"k": 4, "ks": None, "max_prompts": max_prompts,
                                   "prompts_per_batch": 4, "utility": False, "embedder": None},
              "prompts": "builtin:heldout", "metrics": {"pass@1": 0.5, "quality_mean": 0.5,
                                                        "distinct@k": 2.0}}
    if protocol:
        record["protocol"] = protocol
    (path / "metrics.json").write_text(json.dumps(record))


def test_compare_refuses_evaluations_of_different_settings_naming_them(tmp_path):
    # 23.12: eval.max_prompts 4 vs 1 was pooled and reported as an effect with ± 0.000
    from darling.eval.compare import compare

    grpo = {"reward": "grpo", "diversity_weight": 0.0, "seed": 0}
    darling = {"reward": "darling", "diversity_weight": 1.0, "seed": 0}
    _evaluation(tmp_path / "a" / "grpo", grpo, max_prompts=4)
    _evaluation(tmp_path / "a" / "darling", darling, max_prompts=1)
    with pytest.raises(ConfigError, match=r"differ in eval.max_prompts \(.*4: 1 evaluation"):
        compare([tmp_path / "a"], tmp_path / "out")
    _evaluation(tmp_path / "b" / "grpo", grpo, **{"rollout.temperature": 1.0})
    _evaluation(tmp_path / "b" / "darling", darling, **{"rollout.temperature": 0.7})
    with pytest.raises(ConfigError, match=r"differ in rollout.temperature"):
        compare([tmp_path / "b"], tmp_path / "out")


def test_a_one_seed_arm_says_its_interval_is_undefined(tmp_path):
    # 23.17: a one-seed arm showed ± 0.000
    from darling.eval.compare import compare, mean_interval

    assert np.isnan(mean_interval([0.5])[1])
    _evaluation(tmp_path / "grpo", {"reward": "grpo", "diversity_weight": 0.0, "seed": 0})
    compare([tmp_path], tmp_path / "out")
    table = (tmp_path / "out" / "comparison.md").read_text()
    assert "0.500 (1 run, no interval)" in table and "± 0.000" not in table


def test_reevaluating_keeps_the_previous_metrics_and_says_so(tmp_path, caplog):
    # 23.13: a re-run overwrote metrics.json silently
    from darling.eval.run import evaluate
    from tests.test_evaluation import EVAL_TINY, compose_eval

    cfg = compose_eval(*EVAL_TINY, "eval.max_prompts=1")
    evaluate(cfg, tmp_path)
    first = (tmp_path / "metrics.json").read_text()
    evaluate(cfg, tmp_path)
    assert (tmp_path / "metrics.previous.json").read_text() == first
    assert any("already held an evaluation" in r.getMessage() for r in caplog.records)


def test_a_full_disk_says_no_space_left_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    # 23.14: was RuntimeError: [enforce fail at inline_container.cc:672] ...
    from darling.errors import UnwritableError
    from darling.train import checkpoint_io

    target = tmp_path / "checkpoints" / "last.ckpt"
    io = checkpoint_io.AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1}, target)

    def full_disk(obj, f):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")

    monkeypatch.setattr(checkpoint_io.torch, "save", full_disk)
    monkeypatch.setattr(checkpoint_io.shutil, "disk_usage",
                        lambda path: shutil._ntuple_diskusage(10**9, 10**9, 0))
    with pytest.raises(UnwritableError, match=r"no space left on the device of .*checkpoints"):
        io.save_checkpoint({"global_step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True)["global_step"] == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def _read_only(monkeypatch, module, *folders):
    """``write_problem`` of ``module`` reports ``folders`` as read-only (the tests may run as
    root, for whom a chmod'ed folder stays writable)."""
    import errno

    real = module.write_problem

    def write_problem(directory):
        if any(Path(directory).resolve() == Path(f).resolve() for f in folders):
            return PermissionError(errno.EACCES, "Permission denied", str(directory))
        return real(directory)

    monkeypatch.setattr(module, "write_problem", write_problem)


def test_read_only_checkpoints_are_refused_before_training(compose_cfg, tmp_path, monkeypatch):
    # 23.15: a read-only checkpoints/ was found only when the first checkpoint was due
    from darling.errors import UnwritableError
    from darling.train import run_dir

    (tmp_path / "checkpoints").mkdir()
    _read_only(monkeypatch, run_dir, tmp_path / "checkpoints")
    with pytest.raises(UnwritableError, match="checkpoints is not writable"):
        train(compose_cfg(*TINY), tmp_path)
    assert not (tmp_path / "metrics.csv").exists()


def test_a_read_only_run_directory_is_refused_before_hydra_logs_there(tmp_path, monkeypatch,
                                                                      capsys):
    # 23.15: resuming into a read-only run dir failed with "Unable to configure handler 'file'"
    from darling import errors

    run = tmp_path / "run"
    run.mkdir()
    _read_only(monkeypatch, errors, run)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as info:
        errors.ForgetFailedStart().on_run_start(OmegaConf.create({"hydra": {"run": {
            "dir": str(run)}}}))
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {run} is not writable")


def test_a_normal_run_prints_progress_result_and_place_and_no_noise(tmp_path):
    # 23.16: Lightning's litlogger tip, LeafSpec and weights_only messages, "Epoch 0/-2" and
    # "12/4" after a resume; train.log held one line
    tiny = [o for o in TINY if o != "trainer.enable_progress_bar=false"] + ["hydra.run.dir=run"]
    first = _run("train.py", tmp_path, *tiny)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stderr == "", first.stderr
    resumed = _run("train.py", tmp_path, *tiny, "trainer.max_steps=3", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert all(line.startswith(("Restoring states", "Restored all states"))
               for line in resumed.stderr.splitlines()), resumed.stderr
    assert "Epoch" not in first.stdout + resumed.stdout
    assert "steps" in resumed.stdout and "3/3" in resumed.stdout
    story = (tmp_path / "run" / "train.log").read_text()
    for needle in ("step 1/2: reward", "step 3/3: reward", "generate", "resuming",
                   "saved the trained policy to", "done: 3 steps; checkpoint"):
        assert needle in story, needle


def test_a_successful_compare_says_what_it_wrote(tmp_path):
    _evaluation(tmp_path / "grpo", {"reward": "grpo", "diversity_weight": 0.0, "seed": 0})
    out = _run("evaluate.py", tmp_path, f"compare=[{tmp_path}]")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "comparison written to" in out.stdout and "| grpo w=0 | 1 |" in out.stdout
    assert "comparison written to" in (tmp_path / "comparison" / "evaluate.log").read_text()


def test_an_error_after_training_began_keeps_the_resumed_runs_log(tmp_path):
    # the clean-up is for refused starts only: a judge that fails during a resumed run leaves
    # its story in train.log
    tiny = [*TINY, "hydra.run.dir=run"]
    assert _run("train.py", tmp_path, *tiny).returncode == 0
    out = _run("train.py", tmp_path, *tiny, "trainer.max_steps=3", "ckpt_path=last",
               "quality.path=tests.helpers:always_failing_quality", "max_failed_steps=1",
               "resume_any_config=true")
    assert out.returncode == 2 and "Traceback" not in out.stderr  # after "Restored ..." lines
    assert out.stderr.splitlines()[-1].startswith("error: quality function")
    story = (tmp_path / "run" / "train.log").read_text()
    assert "resuming" in story and "stopped: quality function" in story
