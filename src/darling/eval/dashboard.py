"""A sweep's wandb page: its definition built from what the runs logged, and its publication.

``dashboard_spec`` reads nothing itself: it takes the runs as ``darling.eval.wandb_files`` reads
them from the sweep's local wandb folders and returns a plain, JSON-ready definition (sections of
panels, the run set and its grouping, every key a panel reads). Only panels whose keys some run
of the sweep logged are kept, so the page never shows an empty chart. ``to_report`` turns the
definition into a wandb report (the ``wandb-workspaces`` package) and is the only part that
needs a network, when the report is saved.

The page, section by section:

- **Training**: reward, quality and diversity against ``trainer/global_step``, one line per
  diversity weight (runs grouped by ``reward.diversity_weight``): the mean over seeds with a
  band of one standard deviation.
- **Held-out**: the evaluation's ``eval/*`` metrics per arm (pass@1, pass@k at the largest k,
  correct distinct answers, distinct answers, utility, Vendi), mean over seeds with a band of one
  standard error. The 95% Student-t intervals are in the comparison run's ``compare/arms`` table.
- **Diversity weight**: one point per run, the weight against held-out pass@1 and (correct)
  distinct answers.
- **Rollouts**: the ``rollouts/table`` of training rollouts, the held-out generations and the
  comparison table, where logged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from darling.eval.wandb_files import LoggedRun
from darling.extras import require_module

STEP_KEY = "trainer/global_step"
"""The x axis of training curves: Lightning's WandbLogger logs each step's metrics with it."""

ARM_KEY = "reward.diversity_weight"
"""The config key runs are grouped by: one arm per diversity weight."""

TRAINING_CURVES = (
    ("reward/mean", "Does the fused training reward rise, and how does the weight change it?"),
    ("reward/quality_mean", "Does quality alone rise as fast with diversity in the reward?"),
    ("diversity/classes_per_group", "Do the rollouts of a prompt stay in more distinct classes?"),
    ("diversity/score_mean", "Mean Div_i, the diversity the reward multiplies in."),
)
"""(history key, what its panel answers)."""

HELDOUT_BARS = (
    ("eval/pass@1", "Held-out accuracy of one sample, per arm."),
    ("eval/pass@k", "Held-out accuracy of the best of k samples, per arm."),
    ("eval/correct_distinct@k", "How many different correct answers k samples hold, per arm."),
    ("eval/distinct@k", "How many distinct answers (classes) k samples hold, per arm."),
    ("eval/utility@k", "NoveltyBench utility: quality of the novel answers, per arm."),
    ("eval/vendi", "Vendi score of the held-out samples' embeddings, per arm."),
)
"""(summary key, what its panel answers); ``eval/pass@k`` stands for the largest k logged."""

WEIGHT_SCATTERS = (
    ("eval/pass@1", "Does more diversity weight cost (or buy) held-out accuracy?"),
    ("eval/distinct@k", "Does more diversity weight give more distinct answers?"),
    ("eval/correct_distinct@k", "Does it give more different correct answers?"),
)

TABLES = (
    ("rollouts/table", "history", "Training rollouts of one group every N steps: prompt, "
     "response, quality, class, Div, reward, advantage."),
    ("eval/generations", "history", "The held-out generations with quality, correctness, class."),
    ("compare/arms", "history", "The comparison: each arm's mean and 95% interval over seeds."),
)

COMPARISON_JOB = "comparison"
"""The job type of the run ``evaluate.py compare=... logger=wandb`` logs to."""


def dashboard_spec(runs: Mapping[str, LoggedRun], title: str | None = None) -> dict[str, Any]:
    """The page of one sweep: ``runs`` are its wandb runs (training runs, evaluated or not, and
    the comparison run), all of one wandb group. Raises ``ValueError`` when there is no training
    run, or when the runs span several projects or groups (pass one sweep's directory)."""
    trained = [r for r in runs.values()
               if r.job_type != COMPARISON_JOB and r.config_value(ARM_KEY) is not None]
    if not trained:
        raise ValueError("no wandb run of a training run here: train the sweep with "
                         "logger=wandb (and evaluate its runs with logger=wandb)")
    projects = sorted({r.project for r in trained})
    groups = sorted({r.group for r in trained})
    if len(projects) > 1 or len(groups) > 1:
        raise ValueError(f"the runs span several wandb projects {projects} or groups {groups}: "
                         "pass the directory of one sweep")
    group = groups[0]
    history = set().union(*(r.history_keys for r in runs.values()))
    summary = set().union(*(r.summary for r in trained))
    weights = sorted({float(r.config_value(ARM_KEY)) for r in trained})

    lines = [_line(key, answers) for key, answers in TRAINING_CURVES if key in history]
    pass_k = sorted((k for k in summary if re.fullmatch(r"eval/pass@\d+", k)),
                    key=lambda k: int(k.split("@")[1]))
    bars = []
    for key, answers in HELDOUT_BARS:
        if key == "eval/pass@k":
            key = pass_k[-1] if len(pass_k) > 1 else None
        if key in summary:
            bars.append(_bar(key, answers))
    scatters = [_scatter(key, answers) for key, answers in WEIGHT_SCATTERS if key in summary]
    tables = [{"type": "table", "title": key, "key": key, "source": source, "answers": answers}
              for key, source, answers in TABLES if key in history]
    sections = [
        {"title": "Training", "panels": lines},
        {"title": "Held-out", "panels": bars},
        {"title": "Diversity weight", "panels": scatters},
        {"title": "Rollouts", "panels": tables},
    ]
    filters = (f"Group = '{group}'" if group else
               " or ".join(f"ID = '{r.id}'" for r in trained))
    return {
        "title": title or f"darling sweep {group or trained[0].project}",
        "project": projects[0],
        "group": group,
        "runs": sorted(r.id for r in trained),
        "diversity_weights": weights,
        "runset": {"filters": filters, "groupby": [f"config.{ARM_KEY}"]},
        "sections": [s for s in sections if s["panels"]],
    }


def _line(key: str, answers: str) -> dict[str, Any]:
    return {"type": "line", "title": key, "x": STEP_KEY, "y": [key], "groupby": ARM_KEY,
            "aggregate": "mean", "band": "stddev", "answers": answers}


def _bar(key: str, answers: str) -> dict[str, Any]:
    return {"type": "bar", "title": key, "metrics": [key], "groupby": ARM_KEY,
            "aggregate": "mean", "band": "stderr", "answers": answers}


def _scatter(key: str, answers: str) -> dict[str, Any]:
    return {"type": "scatter", "title": f"diversity weight vs {key}", "x": f"config:{ARM_KEY}",
            "y": key, "answers": answers}


def spec_keys(spec: Mapping[str, Any]) -> dict[str, set[str]]:
    """Every key the page reads, by where a run holds it: ``history`` (a logged series),
    ``summary`` (a run's last or summary value) and ``config``."""
    keys: dict[str, set[str]] = {"history": set(), "summary": set(), "config": set()}
    keys["config"] |= {g.removeprefix("config.") for g in spec["runset"]["groupby"]}
    for section in spec["sections"]:
        for panel in section["panels"]:
            kind = panel["type"]
            if kind == "line":
                keys["history"] |= {panel["x"], *panel["y"]}
            elif kind == "bar":
                keys["summary"] |= set(panel["metrics"])
            elif kind == "scatter":
                for axis in (panel["x"], panel["y"]):
                    source, _, name = axis.rpartition(":")
                    keys[source or "summary"].add(name)
            elif kind == "table":
                keys[panel["source"]].add(panel["key"])
            if "groupby" in panel:
                keys["config"].add(panel["groupby"])
    return keys


def to_report(spec: Mapping[str, Any], entity: str) -> Any:
    """The definition as a ``wandb_workspaces`` report of ``entity``'s project, unsaved (its
    ``save()`` publishes it and needs a network and a wandb login)."""
    require_module("wandb_workspaces", "building the wandb dashboard")
    import wandb_workspaces.reports.v2 as wr

    runset = wr.Runset(entity=entity, project=spec["project"], name="sweep",
                       filters=spec["runset"]["filters"], groupby=spec["runset"]["groupby"])
    blocks: list[Any] = [wr.P(f"Runs of wandb group {spec['group'] or '(none)'}, grouped by "
                              f"{ARM_KEY}; built by darling's dashboard.py.")]
    for section in spec["sections"]:
        blocks.append(wr.H1(section["title"]))
        blocks.append(wr.UnorderedList(items=[f"{p['title']}: {p['answers']}"
                                        for p in section["panels"]]))
        blocks.append(wr.PanelGrid(runsets=[runset],
                                   panels=[_panel(wr, p) for p in section["panels"]]))
    return wr.Report(project=spec["project"], entity=entity, title=spec["title"],
                     description="DARLING sweep: training and held-out results per arm",
                     blocks=blocks)


def _panel(wr: Any, panel: Mapping[str, Any]) -> Any:
    kind = panel["type"]
    if kind == "line":
        return wr.LinePlot(title=panel["title"], x=panel["x"], y=list(panel["y"]),
                           groupby=wr.Config(panel["groupby"]),
                           groupby_aggfunc=panel["aggregate"], groupby_rangefunc=panel["band"])
    if kind == "bar":
        return wr.BarPlot(title=panel["title"],
                          metrics=[wr.SummaryMetric(m) for m in panel["metrics"]],
                          groupby=wr.Config(panel["groupby"]),
                          groupby_aggfunc=panel["aggregate"], groupby_rangefunc=panel["band"])
    if kind == "scatter":
        return wr.ScatterPlot(title=panel["title"], x=_axis(wr, panel["x"]),
                              y=_axis(wr, panel["y"]))
    return wr.WeavePanelSummaryTable(table_name=panel["key"])


def _axis(wr: Any, axis: str) -> Any:
    source, _, name = axis.rpartition(":")
    return wr.Config(name) if source == "config" else wr.SummaryMetric(name)
