"""``evaluate.py``: sample k responses per held-out prompt, score, partition, write a report.

``evaluate`` = ``sample`` (the policy's k generations per prompt) -> ``write_generations`` (kept
whatever happens next) -> ``score`` (quality, classes, verifier correctness, embeddings) ->
``write_report`` (metrics over every generation, missing scores counted, never dropped).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import pickle
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from darling.config import missing_value_errors
from darling.errors import BadFileError, ConfigError, ForgetFailedStart, MissingPathError
from darling.eval.config import HELDOUT, PARTITIONS
from darling.eval.plots import plot_pass_at_k
from darling.eval.report import evaluation_report
from darling.metrics.passk import default_ks
from darling.models.checkpoints import is_sharded_checkpoint, load_checkpoint, run_dir_of
from darling.models.frozen import restore_policy
from darling.models.loading import load_policy
from darling.partition import partition_rollouts
from darling.partition.greedy import GreedyPartition
from darling.quality.base import QualityFailure, score_quality
from darling.quality.secrets import check_api_key_env
from darling.quality.verifiers import verifier_correctness
from darling.quiet import silence_known_noise
from darling.rollout.base import EVAL_STREAM, RolloutEngine, Samples, group_seeds
from darling.rollout.engines import build_engine
from darling.tasks.answers import answer_in_set
from darling.tasks.chat import chat_prompt
from darling.tasks.prompts import PromptRow, builtin_path, load_prompts
from darling.wandb_runs import close_logger, uses_wandb, wandb_identity

log = logging.getLogger(__name__)

def find_run(ckpt: str | Path) -> tuple[Path, Path | None]:
    """``(run_dir, checkpoint file or None)`` for a run dir, its ``policy/`` dir or a ``.ckpt``.

    A darling run dir holds ``config.yaml`` and a trained ``policy/`` or ``checkpoints/``.
    """
    path = Path(ckpt)
    if not path.exists():
        raise MissingPathError(f"ckpt={ckpt!r}: {path} does not exist")
    run_dir = run_dir_of(path)
    if path.is_file() or is_sharded_checkpoint(path):
        if not (run_dir / "config.yaml").is_file():
            raise BadFileError(f"ckpt={ckpt!r}: no config.yaml in {run_dir}; not a darling run")
        return run_dir, path
    if not (run_dir / "config.yaml").is_file() or not (
        (run_dir / "policy").is_dir() or (run_dir / "checkpoints" / "last.ckpt").exists()
    ):
        raise BadFileError(
            f"ckpt={ckpt!r} is not a darling run: expected {run_dir}/config.yaml and a "
            f"policy/ folder or checkpoints/last.ckpt (pass a run directory from runs/)"
        )
    if (run_dir / "policy" / "config.json").is_file():
        return run_dir, None
    return run_dir, run_dir / "checkpoints" / "last.ckpt"


def check_eval_config(cfg: DictConfig) -> None:
    """Refuse bad evaluation settings before anything is loaded; messages say what to change."""
    e, k = cfg.eval, cfg.eval.k
    errors = []
    if not isinstance(k, int) or k < 1:
        errors.append(f"eval.k={k}: must be an integer >= 1 (samples per prompt)")
    if e.max_prompts is not None and (not isinstance(e.max_prompts, int) or e.max_prompts < 1):
        errors.append(f"eval.max_prompts={e.max_prompts}: must be null (all prompts) or >= 1")
    if e.prompts_per_batch < 1:
        errors.append(f"eval.prompts_per_batch={e.prompts_per_batch}: must be >= 1")
    if e.ks and isinstance(k, int) and k >= 1:
        bad = [x for x in e.ks if not 1 <= x <= k]
        if bad:
            errors.append(f"eval.ks={list(e.ks)}: {bad} outside 1..eval.k={k}")
    if cfg.rollout.n_per_prompt != k:
        errors.append(f"rollout.n_per_prompt={cfg.rollout.n_per_prompt} must equal eval.k={k}")
    errors += missing_value_errors(cfg)
    if e.partition not in PARTITIONS:
        errors.append(f"eval.partition={e.partition!r}: choose one of {list(PARTITIONS)}")
    if cfg.get("experiment") and cfg.data.eval_path is None:
        errors.append(f"+eval={cfg.experiment} needs its prompts: pass data.eval_path=<file or "
                      f"hf:<dataset>[:<split>]> (see conf/eval/{cfg.experiment}.yaml)")
    if errors:
        raise ConfigError("invalid evaluation config:\n  " + "\n  ".join(errors))


def load_eval_policy(cfg: DictConfig) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """The policy to evaluate and a description of where it came from."""
    if cfg.ckpt is None:
        policy, tokenizer = load_policy(cfg.model, seed=cfg.seed)
        return _merged(policy), tokenizer, {"source": "base", "model": cfg.model.name}
    run_dir, ckpt_file = find_run(cfg.ckpt)
    run_cfg = OmegaConf.load(run_dir / "config.yaml")
    info = {
        "source": str(ckpt_file or run_dir / "policy"),
        "run_dir": str(run_dir),
        "model": run_cfg.model.name,
        "reward": run_cfg.reward.name,
        "diversity_weight": float(run_cfg.reward.diversity_weight),
        "seed": int(run_cfg.seed),
    }
    if ckpt_file is None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        policy = AutoModelForCausalLM.from_pretrained(run_dir / "policy", use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(run_dir / "policy")
        tokenizer.padding_side = "left"
        return policy, tokenizer, info
    policy, tokenizer = load_policy(run_cfg.model, seed=int(run_cfg.seed))
    with checkpoint_errors(ckpt_file, run_cfg.model.name):
        restore_policy(policy, load_checkpoint(ckpt_file))
    return _merged(policy), tokenizer, info


@contextlib.contextmanager
def checkpoint_errors(ckpt_file: Path, model_name: str) -> Iterator[None]:
    """Turn the failures of reading and restoring a checkpoint into one short ``ValueError`` that
    names the file: unreadable bytes (random or truncated; torch's own message suggests
    ``weights_only=False``, which would run code from the file: never do that for an unknown
    file), not a darling checkpoint, or weights of another model (summarised, not every key)."""
    try:
        yield
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as err:
        raise BadFileError(_unreadable(ckpt_file, err)) from None
    except RuntimeError as err:
        text = str(err)
        if "size mismatch" in text or "Missing key" in text or "Unexpected key" in text:
            raise BadFileError(
                f"ckpt={ckpt_file}: its weights do not fit the policy of its run "
                f"(model {model_name!r}): {_key_summary(text)}. Pass the checkpoint of a darling "
                "run of this model (its config.yaml must sit in the run directory)"
            ) from None
        raise BadFileError(_unreadable(ckpt_file, err)) from None
    except (KeyError, TypeError, AttributeError) as err:
        raise BadFileError(
            f"ckpt={ckpt_file}: not a darling training checkpoint (no policy state_dict: "
            f"{type(err).__name__}: {err}); pass runs/<run> or its checkpoints/last.ckpt"
        ) from None


def _unreadable(ckpt_file: Path, err: BaseException) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"ckpt={ckpt_file}: not a readable checkpoint ({first[:200]}); the file is corrupt, "
        "truncated or not a torch checkpoint. Use the run's other checkpoint or policy/ folder"
    )


def _key_summary(message: str, shown: int = 3) -> str:
    """The counts and first few names of missing / unexpected keys of a load_state_dict error."""
    parts = []
    for label in ("Missing key(s)", "Unexpected key(s)"):
        start = message.find(label)
        if start < 0:
            continue
        body = message[start:].split(":", 1)[1].split(". ", 1)[0]
        keys = [k.strip().strip('"') for k in body.split(",") if k.strip()]
        more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
        parts.append(f"{len(keys)} {label.split()[0].lower()} keys ({', '.join(keys[:shown])}"
                     f"{more})")
    if "size mismatch" in message:
        parts.append(f"{message.count('size mismatch')} shape mismatches")
    return "; ".join(parts) or message.splitlines()[0][:200]


def _merged(policy: torch.nn.Module) -> torch.nn.Module:
    return policy.merge_and_unload() if hasattr(policy, "merge_and_unload") else policy


@dataclass
class Scores:
    """What the scorers said about each generation (arrays of shape ``(N,)``): ``quality`` (NaN
    where the quality function failed), class ``labels``, ``correct`` from the prompts' verifier
    (1/0, NaN where it failed; None for open prompts) and optional ``embeddings`` ``(N, D)``."""

    quality: np.ndarray
    labels: np.ndarray
    correct: np.ndarray | None
    embeddings: np.ndarray | None
    metrics: dict[str, float]


def evaluate(cfg: DictConfig, out_dir: str | Path) -> dict[str, float]:
    """Sample, score and write: generations.jsonl, per_prompt.csv, metrics.json, metrics.csv and
    pass_at_k.png. The generations are written before scoring, so a failing scorer loses none."""
    silence_known_noise()
    check_eval_config(cfg)
    check_api_key_env(cfg.quality)
    rows = load_prompts(cfg.data.eval_path or builtin_path("heldout"), cfg.data.prompt_template)
    if cfg.eval.max_prompts is not None:
        rows = rows[: cfg.eval.max_prompts]
    policy, tokenizer, info = load_eval_policy(cfg)
    ForgetFailedStart.work_began()  # an error from here on keeps what the evaluation wrote
    policy.eval()
    engine = build_engine(cfg.rollout)
    engine.bind(policy, tokenizer)
    prompts = [chat_prompt(tokenizer, r, cfg.data.system_prompt) for r in rows]
    samples = sample(engine, rows, prompts, int(cfg.eval.k), cfg.seed,
                     int(cfg.eval.prompts_per_batch))
    engine.close()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keep_previous(out_dir)
    write_generations(out_dir / "generations.jsonl", samples)
    try:
        scores = score(samples, instantiate(cfg.quality), eval_partitioner(cfg),
                       instantiate(cfg.eval.embedder) if cfg.eval.embedder else None)
    except QualityFailure as err:
        raise QualityFailure(
            f"{err}; the {len(samples.texts)} generations are kept in "
            f"{out_dir / 'generations.jsonl'}"
        ) from err
    write_generations(out_dir / "generations.jsonl", samples, scores)
    k, setup = int(cfg.eval.k), evaluation_setup(cfg, info)
    summary, plots = write_report(out_dir, samples, scores, k,
                                  list(cfg.eval.ks) if cfg.eval.ks else default_ks(k),
                                  bool(cfg.eval.utility), setup)
    if cfg.logger:
        logger = eval_logger(cfg.logger, out_dir, info)
        logger.log_hyperparams({"eval": setup["eval"], "eval_prompts": setup["prompts"]})
        _log_to_logger(logger, summary, out_dir, plots)
    log.info("evaluation written to %s: %s", out_dir, {k: round(v, 4) for k, v in summary.items()
                                                        if "@" in k or k == "quality_mean"})
    return summary


PREVIOUS = "metrics.previous.json"
"""Where a re-run keeps the ``metrics.json`` it replaces (``compare`` reads only
``metrics.json``)."""


def keep_previous(out_dir: Path) -> None:
    """A re-run evaluation replaces the one in ``out_dir``: say so, and keep its
    ``metrics.json`` as ``metrics.previous.json`` (one generation back)."""
    old = out_dir / "metrics.json"
    if old.is_file():
        old.replace(out_dir / PREVIOUS)
        log.warning("%s already held an evaluation: replacing it (its metrics.json is kept as "
                    "%s); pass eval.out_dir=<another folder> to keep both", out_dir, PREVIOUS)


def sample(engine: RolloutEngine, rows: list[PromptRow], prompts: list[str], k: int,
           seed: int, prompts_per_batch: int) -> Samples:
    """``k`` generations of each of ``rows`` (``prompts``: their chat-formatted texts) from a
    bound ``engine``, ``prompts_per_batch`` prompts per call. Prompt ``i`` is group ``i`` of the
    evaluation stream of ``seed`` (``group_seeds``), so its generations do not depend on the
    batching."""
    texts, gids, row_of = [], [], []
    for start in range(0, len(rows), prompts_per_batch):
        chunk = rows[start : start + prompts_per_batch]
        seeds = group_seeds(seed, range(start, start + len(chunk)), k, stream=EVAL_STREAM)
        rollouts = engine.generate(prompts[start : start + prompts_per_batch],
                                   [r.id for r in chunk], seeds=seeds)
        generated = Samples.of(rollouts, chunk)
        texts += generated.texts
        gids += generated.group_ids
        row_of += generated.rows
    return Samples(texts, gids, row_of)


def eval_partitioner(cfg: DictConfig) -> Any:
    """The configured classifier, as training uses it (``eval.partition=union_find``) or in
    NoveltyBench's greedy pass (``greedy``)."""
    partitioner = instantiate(cfg.classifier)
    return GreedyPartition(partitioner) if cfg.eval.partition == "greedy" else partitioner


def score(samples: Samples, quality_fn: Any, partitioner: Any,
          embedder: Callable[[list[str]], np.ndarray] | None = None) -> Scores:
    """Quality, partition classes, verifier correctness and (with an ``embedder``) embeddings of
    every generation. Nothing is dropped: a failed quality row stays as NaN
    (``evaluation_report`` counts it)."""
    texts, rows = samples.texts, samples.rows
    quality, quality_metrics = score_quality(quality_fn, [r.prompt for r in rows], texts, rows)
    if len(texts) and quality_metrics["failed_share"] == 1.0:
        log.warning("the quality function failed on every one of the %d generations (an "
                    "unreachable judge?): quality metrics are NaN; generations, classes and "
                    "correctness are still reported", len(texts))
    labels, pair_metrics = partition_rollouts(texts, samples.group_ids, rows, partitioner)
    verifiable = bool(rows) and all(r.kind in ("answers", "ground_truth") for r in rows)
    correct = (
        np.asarray([np.nan if c is None else c for c in verifier_correctness(texts, rows)])
        if verifiable else None
    )
    embeddings = embedder(texts) if embedder is not None else None
    return Scores(quality, labels, correct, embeddings,
                  {**{f"partition/{k}": v for k, v in pair_metrics.items()}})


def write_generations(path: Path, samples: Samples, scores: Scores | None = None) -> None:
    """One JSON line per generation: group id, prompt, response, the matched answer (answer-set
    prompts) and, once scored, quality (null where it failed), verifier correctness and class."""
    with path.open("w") as f:
        for i, text in enumerate(samples.texts):
            row = samples.rows[i]
            record: dict[str, Any] = {
                "group_id": samples.group_ids[i], "prompt": row.prompt, "response": text,
            }
            if scores is not None:
                record["quality"] = None if np.isnan(scores.quality[i]) else float(
                    scores.quality[i])
                if scores.correct is not None:
                    c = scores.correct[i]
                    record["correct"] = None if np.isnan(c) else bool(c)
                record["class"] = int(scores.labels[i])
            if row.kind == "answers":
                record["answer"] = answer_in_set(text, row.answers, row.alias_map)[1]
            f.write(json.dumps(record) + "\n")


def evaluation_setup(cfg: DictConfig, info: dict[str, Any]) -> dict[str, Any]:
    """What ``metrics.json`` records beside the metrics: the policy (``info``, with the
    ``study`` label), the ``eval`` settings, the prompts, the sampling and the ``protocol``."""
    if cfg.get("study") is not None:
        info = {**info, "study": cfg.study}
    sampling = {key: cfg.rollout.get(key) for key in ("temperature", "top_p", "max_new_tokens")}
    return {"run": info, "eval": OmegaConf.to_container(cfg.eval, resolve=True),
            "prompts": str(cfg.data.eval_path or HELDOUT), "sampling": sampling,
            "protocol": protocol(cfg)}


def write_report(out_dir: Path, samples: Samples, scores: Scores, k: int, ks: list[int],
                 utility: bool, setup: dict[str, Any]) -> tuple[dict[str, float], list[Path]]:
    """The metrics of ``evaluation_report`` over every generation (pass@``ks``, NoveltyBench's
    utility@``k`` with ``utility``), written to metrics.json (``setup`` and the metrics),
    metrics.csv and per_prompt.csv, and the pass@k curve to pass_at_k.png where the prompts are
    verifiable. Returns the metrics and the plots written."""
    summary, per_prompt = evaluation_report(
        samples.texts,
        samples.group_ids,
        scores.quality,
        scores.labels,
        correct=scores.correct,
        embeddings=scores.embeddings,
        ks=ks,
        utility_scores=utility,
    )
    summary.update(scores.metrics)
    summary["k"] = float(k)
    _write_csv(out_dir / "per_prompt.csv", per_prompt)
    result = {**setup, "metrics": summary}
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    _write_csv(out_dir / "metrics.csv", [summary])
    plots = []
    if scores.correct is not None:
        curve = {int(key.split("@")[1]): (v, 0.0) for key, v in summary.items()
                 if key.startswith("pass@") and not np.isnan(v)}
        if curve:
            plots.append(plot_pass_at_k({setup["run"].get("reward", "base"): curve},
                                        out_dir / "pass_at_k.png"))
    return summary, plots


def eval_logger(logger_cfg: DictConfig, out_dir: Path, info: dict[str, Any]) -> Any:
    """The configured logger of this evaluation. Under ``logger=wandb`` the evaluation of a
    trained run logs into that run's own wandb run (its id, entity, project, group, name, tags:
    ``wandb_identity``), with its files beside the training's in ``<run dir>/wandb``, so one row
    of the runs table holds the training curves and the held-out results. The run's training
    config is logged again (unchanged for a run trained with wandb; for one trained without, it
    gives the run its arm, so a dashboard can group it)."""
    run_dir = info.get("run_dir")
    if not (run_dir and uses_wandb(logger_cfg)):
        return instantiate(logger_cfg, save_dir=str(out_dir))
    run_cfg = OmegaConf.load(Path(run_dir) / "config.yaml")
    identity = wandb_identity(run_dir, run_cfg.get("run_name"))
    logger = instantiate(logger_cfg, save_dir=str(run_dir), **{
        k: identity[k] for k in ("id", "entity", "project", "group", "name", "tags")
        if identity.get(k) is not None})
    logger.log_hyperparams(OmegaConf.to_container(run_cfg, resolve=True))
    return logger


PROTOCOL_KEYS = ("rollout.temperature", "rollout.top_p", "rollout.max_new_tokens",
                 "data.system_prompt", "quality", "classifier")
"""Settings besides ``eval.*`` and the prompts that change what an evaluation measures;
``compare`` refuses to pool evaluations that differ in any of them."""


OPERATIONAL_KEYS = frozenset({"api_key_env", "timeout_s", "retries", "backoff_s", "max_workers",
                              "batch_size", "device"})
"""Fields of a quality or classifier config that change how it runs, not what it measures."""


def protocol(cfg: DictConfig) -> dict[str, Any]:
    """``PROTOCOL_KEYS`` -> value, resolved (a group config as a dict without its
    ``OPERATIONAL_KEYS``)."""
    out = {}
    for key in PROTOCOL_KEYS:
        value = OmegaConf.select(cfg, key)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in OPERATIONAL_KEYS}
        out[key] = value
    return out


def _log_to_logger(logger: Any, summary: dict[str, float], out_dir: Path, plots: list[Path]):
    """Send the summary, a table of generations and the plots to a configured logger (wandb
    logs all three; loggers without tables or images get the summary only). A wandb run also
    gets the summary as its run summary, which the runs table and the dashboard's per-arm panels
    read, whatever step its history rows land on."""
    metrics = {f"eval/{k}": v for k, v in summary.items()}
    logger.log_metrics(metrics)
    run = getattr(logger, "experiment", None)
    if hasattr(run, "summary"):
        run.summary.update(metrics)
    if hasattr(logger, "log_table"):
        records = [json.loads(line) for line in (out_dir / "generations.jsonl").open()]
        columns = list(records[0]) if records else []
        logger.log_table("eval/generations", columns=columns,
                         data=[[r.get(c) for c in columns] for r in records])
    if hasattr(logger, "log_image") and plots:
        logger.log_image("eval/plots", [str(p) for p in plots])
    logger.finalize("success")
    close_logger(logger)


def log_comparison(cfg: DictConfig, result: dict[str, Any]) -> None:
    """Under ``logger=wandb``: log a comparison's table (``compare/arms``, the rows of
    ``comparison.csv``) and plots (``compare/plots``) to a run named ``comparison`` in the wandb
    group of the compared runs (the sweep's), job type ``comparison``. Other loggers: nothing
    (the comparison's files are the record)."""
    if not uses_wandb(cfg.logger):
        return
    out_dir = Path(result["out_dir"])
    identities = [wandb_identity(r["run_dir"]) for r in result["runs"] if r.get("run_dir")]
    groups = sorted({i.get("group") or "" for i in identities})
    projects = sorted({i["project"] for i in identities if i.get("project")})
    if len(groups) > 1:
        log.warning("the compared runs are in several wandb groups %s: the comparison run gets "
                    "none", groups)
    extra = {"project": projects[0]} if len(projects) == 1 else {}
    logger = instantiate(cfg.logger, save_dir=str(out_dir), name="comparison",
                         group=groups[0] if len(groups) == 1 else "", tags=["comparison"],
                         job_type="comparison", **extra)
    with (out_dir / "comparison.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    logger.log_table("compare/arms", columns=rows[0],
                     data=[[_number(cell) for cell in row] for row in rows[1:]])
    plots = sorted(out_dir.glob("*.png"))
    if plots:
        logger.log_image("compare/plots", [str(p) for p in plots])
    logger.finalize("success")
    close_logger(logger)


def _number(cell: str) -> Any:
    """A CSV cell as a float where it is one (so wandb sorts and plots it), else the text."""
    try:
        return float(cell)
    except ValueError:
        return cell


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
