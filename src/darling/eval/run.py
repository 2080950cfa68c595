"""``evaluate.py``: sample k responses per held-out prompt, score, partition, write a report."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from darling.eval.config import run_dir_of
from darling.eval.plots import plot_pass_at_k
from darling.eval.report import evaluation_report
from darling.models.frozen import restore_policy
from darling.models.loading import load_policy
from darling.partition.keyed import partition_rollouts
from darling.quality.base import score_quality
from darling.rollout.base import EVAL_STREAM, group_seeds
from darling.tasks.answers import answer_in_set
from darling.tasks.prompts import builtin_path, load_prompts
from darling.train.data import chat_prompt
from darling.train.loggers import close_logger
from darling.train.run import build_engine

log = logging.getLogger(__name__)

def find_run(ckpt: str | Path) -> tuple[Path, Path | None]:
    """``(run_dir, checkpoint file or None)`` for a run dir, its ``policy/`` dir or a ``.ckpt``.

    A darling run dir holds ``config.yaml`` and a trained ``policy/`` or ``checkpoints/``.
    """
    path = Path(ckpt)
    if not path.exists():
        raise FileNotFoundError(f"ckpt={ckpt!r}: {path} does not exist")
    run_dir = run_dir_of(path)
    if path.is_file():
        if not (run_dir / "config.yaml").is_file():
            raise ValueError(f"ckpt={ckpt!r}: no config.yaml in {run_dir}; not a darling run")
        return run_dir, path
    if not (run_dir / "config.yaml").is_file() or not (
        (run_dir / "policy").is_dir() or (run_dir / "checkpoints" / "last.ckpt").is_file()
    ):
        raise ValueError(
            f"ckpt={ckpt!r} is not a darling run: expected {run_dir}/config.yaml and a "
            f"policy/ folder or checkpoints/last.ckpt (pass a run directory from runs/)"
        )
    if (run_dir / "policy" / "config.json").is_file():
        return run_dir, None
    return run_dir, run_dir / "checkpoints" / "last.ckpt"


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
    restore_policy(policy, torch.load(ckpt_file, map_location="cpu", weights_only=True))
    return _merged(policy), tokenizer, info


def _merged(policy: torch.nn.Module) -> torch.nn.Module:
    return policy.merge_and_unload() if hasattr(policy, "merge_and_unload") else policy


def evaluate(cfg: DictConfig, out_dir: str | Path) -> dict[str, float]:
    """Write generations.jsonl, per_prompt.csv, metrics.json, metrics.csv and pass_at_k.png."""
    out_dir = Path(out_dir)
    rows = load_prompts(cfg.data.eval_path or builtin_path("heldout"))
    if cfg.eval.max_prompts:
        rows = rows[: cfg.eval.max_prompts]
    k = int(cfg.eval.k)
    ks = list(cfg.eval.ks) if cfg.eval.ks else None
    if ks and max(ks) > k:
        raise ValueError(f"eval.ks={ks} asks for k={max(ks)} but only eval.k={k} samples are drawn")
    policy, tokenizer, info = load_eval_policy(cfg)
    policy.eval()
    classifier = instantiate(cfg.classifier)
    quality_fn = instantiate(cfg.quality)
    if cfg.rollout.n_per_prompt != k:
        raise ValueError(f"rollout.n_per_prompt={cfg.rollout.n_per_prompt} must equal eval.k={k}")
    engine = build_engine(cfg)
    engine.bind(policy, tokenizer)

    texts, gids, row_of = [], [], []
    batch = int(cfg.eval.prompts_per_batch)
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        prompts = [chat_prompt(tokenizer, r.prompt, cfg.data.system_prompt) for r in chunk]
        seeds = group_seeds(cfg.seed, range(start, start + len(chunk)), k, stream=EVAL_STREAM)
        rollouts = engine.generate(prompts, [r.id for r in chunk], seeds=seeds)
        texts += rollouts.texts
        gids += rollouts.group_ids
        row_of += [chunk[i] for i in rollouts.prompt_index]

    quality, quality_metrics = score_quality(
        quality_fn, [r.prompt for r in row_of], texts, row_of
    )
    labels, pair_metrics = partition_rollouts(texts, gids, row_of, classifier)
    verifiable = all(r.kind in ("answers", "ground_truth") for r in rows)
    scored = ~np.isnan(quality)
    correct = quality[scored] >= 1.0 if verifiable else None
    embeddings = instantiate(cfg.eval.embedder)(texts) if cfg.eval.embedder else None
    keep = np.flatnonzero(scored)
    summary, per_prompt = evaluation_report(
        [texts[i] for i in keep],
        [gids[i] for i in keep],
        quality[keep],
        labels[keep],
        correct=correct,
        embeddings=embeddings[keep] if embeddings is not None else None,
        ks=ks,
        utility_scores=bool(cfg.eval.utility),
    )
    summary["quality_missing"] = float((~scored).sum())
    summary.update({f"partition/{k}": v for k, v in pair_metrics.items()})
    summary["k"] = float(k)

    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "generations.jsonl").open("w") as f:
        for i, text in enumerate(texts):
            row = row_of[i]
            record = {
                "group_id": gids[i],
                "prompt": row.prompt,
                "response": text,
                "quality": None if np.isnan(quality[i]) else float(quality[i]),
                "class": int(labels[i]),
            }
            if row.kind == "answers":
                record["answer"] = answer_in_set(text, row.answers, row.alias_map)[1]
            f.write(json.dumps(record) + "\n")
    _write_csv(out_dir / "per_prompt.csv", per_prompt)
    result = {"run": info, "eval": OmegaConf.to_container(cfg.eval, resolve=True),
              "metrics": summary}
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    _write_csv(out_dir / "metrics.csv", [summary])
    plots = []
    if verifiable:
        curve = {int(key.split("@")[1]): (v, 0.0) for key, v in summary.items()
                 if key.startswith("pass@")}
        plots.append(plot_pass_at_k({info.get("reward", "base"): curve}, out_dir / "pass_at_k.png"))
    if cfg.logger:
        _log_to_logger(instantiate(cfg.logger, save_dir=str(out_dir)), summary, out_dir, plots)
    log.info("evaluation written to %s: %s", out_dir, {k: round(v, 4) for k, v in summary.items()
                                                        if "@" in k or k == "quality_mean"})
    return summary


def _log_to_logger(logger: Any, summary: dict[str, float], out_dir: Path, plots: list[Path]):
    """Send the summary, a table of generations and the plots to a configured logger (wandb
    logs all three; loggers without tables or images get the summary only)."""
    logger.log_metrics({f"eval/{k}": v for k, v in summary.items()})
    if hasattr(logger, "log_table"):
        records = [json.loads(line) for line in (out_dir / "generations.jsonl").open()]
        columns = list(records[0]) if records else []
        logger.log_table("eval/generations", columns=columns,
                         data=[[r.get(c) for c in columns] for r in records])
    if hasattr(logger, "log_image") and plots:
        logger.log_image("eval/plots", [str(p) for p in plots])
    logger.finalize("success")
    close_logger(logger)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
