"""Schema and output location of an evaluation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from darling.config import DataSpec, RolloutSpec
from darling.errors import MissingPathError
from darling.models.checkpoints import run_dir_of
from darling.models.loading import ModelSpec


@dataclass
class EvalSpec:
    """What to measure."""

    k: int = 16
    """Samples per prompt (pass@k for k = 1, 2, 4, ..., k)."""
    ks: list[int] | None = None
    """Explicit k values (each <= k); default powers of two up to k."""
    max_prompts: int | None = None
    """The first ``max_prompts`` prompts of the file; None: all of them (0 or less is refused)."""
    prompts_per_batch: int = 4
    utility: bool = False
    """NoveltyBench utility@k; needs quality scores on 1..10 (a judge)."""
    embedder: Any = None
    """Sentence embedder for embedding distance and Vendi (None: skip)."""
    partition: str = "union_find"
    """How pair decisions become classes: union_find (connected components, as in training,
    spec 2) or greedy (NoveltyBench's pass: each generation joins the first class whose
    representative it matches, ``darling.partition.greedy``)."""
    out_dir: str = MISSING


@dataclass
class EvaluateConfig:
    model: ModelSpec = field(default_factory=ModelSpec)
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    data: DataSpec = field(default_factory=DataSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    quality: Any = MISSING
    classifier: Any = MISSING
    logger: Any = None
    ckpt: str | None = None
    """A run directory (runs/<name>), its policy/ folder or a .ckpt file; None: the base model."""
    compare: list[str] | None = None
    """Instead of evaluating: compare the metrics.json files found under these paths."""
    baseline: str | None = None
    """With compare: the arm every other arm is also compared with seed by seed (paired
    differences), named as in the comparison table, e.g. ``grpo w=0``."""
    analysis: str = "paired"
    """With compare and baseline: ``paired`` (each arm minus the baseline seed by seed, Student-t
    on the differences), ``unpaired`` (the two arms' runs as independent samples: Welch's
    interval and a two-sided permutation p-value) or ``both``. Unpaired counts every run, and is
    the narrower analysis when the arms' results are not positively correlated within a seed
    (docs/results.md, study 3)."""
    permutations: int = 9999
    """With the unpaired analysis: labellings enumerated exactly if there are at most this many,
    otherwise this many random ones (drawn with ``seed``)."""
    collapsed_below: float | None = None
    """With compare: a run whose distinct@k is below this counts as collapsed; each arm's share
    of collapsed runs is reported (``collapsed_share``). None: not reported."""
    signal_classifier: bool = False
    """With compare: also partition every run's logged training rollouts with the configured
    ``classifier`` (default: the shipped one) and check it against the answers
    (``signal/classifier_false_merge``, ``signal/classifier_false_split``), so that arms trained
    with different partitions are judged by one classifier. Answer-set training prompts only."""
    study: str | None = None
    """A label written into metrics.json as ``run.study`` (e.g. ``3``): compare shows it per run,
    never pairs runs of different studies, and gives each study's unpaired difference."""
    seed: int = 0
    experiment: str | None = None
    """The ``+eval=<name>`` preset in use (each preset sets it), so that a preset run without
    its prompt file fails naming what to pass."""


PARTITIONS = ("union_find", "greedy")

HELDOUT = "builtin:heldout"
"""How metrics.json names the built-in held-out prompts (``data.eval_path=null``)."""


def default_eval_dir(
    ckpt: str | None, model_name: str, k: int, seed: int, compare: Any = None,
    eval_path: str | None = None, temperature: float = 1.0, top_p: float = 1.0,
) -> str:
    """``<run dir>/eval-k<k>-seed<seed>`` for a checkpoint, ``evals/<model>-base-...`` for the
    base model, ``<first compared path>/comparison`` when comparing. Prompts other than the
    built-in held-out ones (``data.eval_path``) add ``-<file stem>``, and sampling other than
    temperature 1, top_p 1 adds ``-t<temperature>-p<top_p>`` (``-t0.6-p0.95``), so that scoring a
    run on another prompt file or at another temperature never overwrites its held-out
    evaluation.

    Hydra creates this directory before the job starts, so a ``ckpt`` that does not exist is
    refused here: otherwise ``ckpt=runs/x/checkpoints/last.ckpt`` would create a *directory*
    named ``last.ckpt`` (and the run could no longer resume from it)."""
    if compare:
        return str(Path(str(compare[0])) / "comparison")
    if ckpt and not Path(ckpt).exists():
        raise MissingPathError(
            f"ckpt={ckpt!r}: {Path(ckpt).resolve()} does not exist (pass a run directory from "
            "runs/, its policy/ folder or a .ckpt file)"
        )
    # builtin:math_heldout -> -builtin-math_heldout, hf:org/set:split -> -set-split
    suffix = f"-{Path(str(eval_path)).stem.replace(':', '-')}" if eval_path else ""
    if (float(temperature), float(top_p)) != (1.0, 1.0):
        suffix += f"-t{float(temperature):g}-p{float(top_p):g}"
    if ckpt:
        return str(run_dir_of(ckpt) / f"eval-k{k}-seed{seed}{suffix}")
    return f"evals/{model_name}-base-k{k}-seed{seed}{suffix}"


def check_eval_command_line(argv: list[str]) -> None:
    """Refuse, before Hydra creates the output directory, a ``ckpt=`` or ``compare=[...]`` that
    names a path that does not exist (printed as ``error: ...``, exit code 2); Hydra would
    otherwise create the evaluation folder (or ``comparison/``) under the missing path."""
    from darling.errors import UserError, exit_on_user_error

    try:
        for arg in argv:
            key, sep, value = arg.partition("=")
            if not sep or value in ("", "null") or "${" in value or "(" in value:
                continue  # interpolations and sweep functions are Hydra's to resolve
            key = key.lstrip("+~")
            if key == "ckpt":
                # a -m sweep gives several paths: a,b
                paths = [value] if Path(value).exists() else value.split(",")
                for path in paths:
                    default_eval_dir(path.strip().strip("'\""), "", 0, 0)
            elif key == "compare":
                for path in _listed_paths(value):
                    if not Path(path).exists():
                        raise MissingPathError(
                            f"compare: {path} does not exist (pass folders or metrics.json files "
                            "written by evaluate.py)")
    except UserError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        exit_on_user_error(err)


def _listed_paths(value: str) -> list[str]:
    """The paths of a command-line list ``[a,'b c']`` (or a single path).

    >>> _listed_paths("[runs/a, 'runs/b']")
    ['runs/a', 'runs/b']
    """
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    return [p.strip().strip("'\"") for p in value.split(",") if p.strip()]


def register_eval_configs() -> None:
    ConfigStore.instance().store(name="darling_eval_schema", node=EvaluateConfig)
    if not OmegaConf.has_resolver("darling_eval_dir"):
        OmegaConf.register_new_resolver("darling_eval_dir", default_eval_dir)
