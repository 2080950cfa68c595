"""wandb comparison dashboards, offline: a 2-run sweep, its evaluations and comparison leave
wandb runs whose files hold the config, the step metrics, the rollout table and the held-out
metrics; the dashboard built from them names only keys they logged."""

import json

import pytest

from darling.eval.compare import compare
from darling.eval.dashboard import dashboard_spec, spec_keys, to_report
from darling.eval.run import evaluate, log_comparison
from darling.train.callbacks import ROLLOUT_TABLE_COLUMNS, ROLLOUT_TABLE_KEY
from darling.train.run import train
from darling.wandb_runs import wandb_identity
from tests.conftest import TINY
from tests.test_evaluation import EVAL_TINY, compose_eval

GROUP = "multirun/dashboard-test"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two arms (diversity weight 0 and 1) of one wandb group, 2 steps each with a rollout
    table at every step, each evaluated with logger=wandb, then compared with logger=wandb."""
    pytest.importorskip("wandb")
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    root = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DIR", str(root))
        mp.setenv("WANDB_SILENT", "true")
        for weight in (0, 1):
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                cfg = compose(config_name="config", overrides=[
                    *TINY, "logger=wandb", f"logger.group={GROUP}",
                    f"reward.diversity_weight={weight}", "rollout_table_every_n_steps=1"])
            run = root / f"w{weight}"
            train(cfg, run)
            evaluate(compose_eval(*EVAL_TINY, f"ckpt={run}", "logger=wandb"), run / "eval")
        cfg = compose_eval(*EVAL_TINY, f"compare=[{root}]", "logger=wandb")
        log_comparison(cfg, compare([root], root / "comparison"))
    from darling.eval.wandb_files import read_runs

    return root, read_runs(root)


@pytest.mark.slow
def test_offline_runs_hold_config_steps_rollout_table_and_heldout_metrics(sweep):
    root, runs = sweep
    trained = {r.config_value("reward.diversity_weight"): r for r in runs.values()
               if r.job_type != "comparison"}
    assert sorted(trained) == [0.0, 1.0] and len(runs) == 3
    for weight, run in trained.items():
        # one wandb run per run directory: the evaluation resumed the training's run id
        assert run.id == wandb_identity(root / f"w{weight:g}")["id"]
        assert len(run.folders) == 2 and run.group == GROUP
        assert run.config_value("rollout.n_per_prompt") == 4
        assert f"w={weight:g}" in " ".join(run.tags) or f"w={float(weight)}" in run.tags
        steps = [row["trainer/global_step"] for row in run.history if "reward/mean" in row]
        assert steps == [0, 1]
        # the rollout table: logged at both steps; its latest file holds one group per step
        tables = [row[ROLLOUT_TABLE_KEY] for row in run.history if ROLLOUT_TABLE_KEY in row]
        assert len(tables) == 2 and tables[-1]["_type"] == "table-file"
        table = json.loads((run.folders[0] / "files" / tables[-1]["path"]).read_text())
        assert table["columns"] == list(ROLLOUT_TABLE_COLUMNS)
        assert [row[0] for row in table["data"]] == [0] * 4 + [1] * 4  # n_per_prompt=4
        assert all(isinstance(row[2], str) and row[2] for row in table["data"])  # the prompt
        # held-out metrics in the run summary, equal to the evaluation's metrics.json
        held_out = json.loads((root / f"w{weight:g}" / "eval" / "metrics.json").read_text())
        for key in ("pass@1", "distinct@k", "correct_distinct@k"):
            assert run.summary[f"eval/{key}"] == pytest.approx(held_out["metrics"][key])
        assert "eval/generations" in run.history_keys
    (comparison,) = [r for r in runs.values() if r.job_type == "comparison"]
    assert comparison.group == GROUP and "compare/arms" in comparison.history_keys


@pytest.mark.slow
def test_dashboard_names_only_keys_the_runs_logged(sweep, tmp_path):
    root, runs = sweep
    import dashboard

    spec = dashboard.main([str(root), "--out", str(tmp_path / "dashboard.json")])
    assert json.loads((tmp_path / "dashboard.json").read_text()) == spec
    assert spec["group"] == GROUP and spec["diversity_weights"] == [0.0, 1.0]
    assert spec["runset"]["groupby"] == ["config.reward.diversity_weight"]
    panels = {(p["type"], p["title"]): p for s in spec["sections"] for p in s["panels"]}
    assert panels["line", "reward/mean"]["x"] == "trainer/global_step"
    assert {("line", "reward/quality_mean"), ("line", "diversity/classes_per_group"),
            ("bar", "eval/pass@1"), ("bar", "eval/pass@4"), ("bar", "eval/correct_distinct@k"),
            ("scatter", "diversity weight vs eval/pass@1"),
            ("scatter", "diversity weight vs eval/distinct@k"),
            ("table", ROLLOUT_TABLE_KEY), ("table", "compare/arms")} <= set(panels)
    assert ("bar", "eval/vendi") not in panels  # the evaluations ran without an embedder
    keys = spec_keys(spec)
    trained = [r for r in runs.values() if r.job_type != "comparison"]
    assert keys["history"] <= set().union(*(r.history_keys for r in runs.values()))
    assert keys["summary"] <= set().union(*(r.summary for r in trained))
    assert all(r.config_value(k) is not None for k in keys["config"] for r in trained)


def test_dashboard_spec_refuses_runs_without_training():
    from darling.eval.wandb_files import LoggedRun

    with pytest.raises(ValueError, match="logger=wandb"):
        dashboard_spec({"c": LoggedRun(id="c", job_type="comparison")})


@pytest.mark.slow
def test_dashboard_definition_builds_a_wandb_report(sweep):
    pytest.importorskip("wandb_workspaces")
    _, runs = sweep
    report = to_report(dashboard_spec(runs), entity="someone")  # built offline, not saved
    grids = [b for b in report.blocks if type(b).__name__ == "PanelGrid"]
    assert len(grids) == 4 and grids[0].runsets[0].groupby == ["config.reward.diversity_weight"]


def test_rollout_table_adds_one_group_every_n_steps_for_loggers_with_tables():
    from types import SimpleNamespace

    from darling.tasks.prompts import PromptRow
    from darling.train.callbacks import RolloutTable

    class TableLogger:
        def __init__(self):
            self.calls = []

        def log_table(self, key, columns, data, step):
            self.calls.append((key, columns, [list(r) for r in data], step))

    logger = TableLogger()
    trainer = SimpleNamespace(loggers=[logger, object()], is_global_zero=True, max_steps=4,
                              global_step=0)
    rows = [PromptRow(id="p0", prompt="Name a colour.", kind="open"),
            PromptRow(id="p1", prompt="Name a fish.", kind="open")]
    callback = RolloutTable(every_n_steps=2)
    for step in range(4):
        trainer.global_step = step + 1
        records = [{"step": step, "group_id": g, "prompt_id": f"p{g}", "response": f"r{i}",
                    "quality": 1.0, "class": i, "diversity": 0.5, "reward": 0.5,
                    "advantage": 0.0} for g in (0, 1) for i in range(2)]
        callback.on_train_batch_end(trainer, None, {"rollouts": records},
                                    SimpleNamespace(rows=rows), 0)
    # steps 1 and 3 (every 2nd); each adds group 0's two rollouts, with their prompt
    assert [(key, step) for key, _, _, step in logger.calls] == [(ROLLOUT_TABLE_KEY, 1),
                                                                (ROLLOUT_TABLE_KEY, 3)]
    _, columns, data, _ = logger.calls[-1]
    assert columns == list(ROLLOUT_TABLE_COLUMNS)
    assert data == [[1, "0", "Name a colour.", "r0", 1.0, 0, 0.5, 0.5, 0.0],
                    [1, "0", "Name a colour.", "r1", 1.0, 1, 0.5, 0.5, 0.0],
                    [3, "0", "Name a colour.", "r0", 1.0, 0, 0.5, 0.5, 0.0],
                    [3, "0", "Name a colour.", "r1", 1.0, 1, 0.5, 0.5, 0.0]]


def test_an_evaluation_of_a_run_trained_without_wandb_gets_the_id_it_would_have_had(tmp_path):
    from darling.wandb_runs import wandb_run_id

    identity = wandb_identity(tmp_path, "tiny-grpo-w0.0-seed1")
    assert identity == {"id": wandb_run_id(tmp_path, "tiny-grpo-w0.0-seed1"),
                        "name": "tiny-grpo-w0.0-seed1", "group": "", "tags": []}
