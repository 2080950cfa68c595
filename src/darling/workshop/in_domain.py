"""The in-domain pairs of a training run (mined from its rollout log, labelled by the task's
verifier or an LM judge) and the checks of a classifier trained with them: false split and false
merge on held-out categories, ROC-AUC on the human validation pairs (issue 12)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from darling.errors import BadFileError, ConfigError, MissingPathError
from darling.workshop.pairs_data import PairRow, load_pairs

IN_DOMAIN = ("verifier", "judge")
"""``labeler`` of the in-domain pairs (``labelling.label_pairs``)."""


def read_rollouts(run_dir: Path) -> list[dict]:
    """All records of ``<run_dir>/rollouts/*.jsonl``; errors name the file and line."""
    logs = sorted((run_dir / "rollouts").glob("*.jsonl"))
    if not logs:
        raise MissingPathError(f"no rollout log in {run_dir / 'rollouts'}: train with "
                                "log_rollouts=true, or point data.run at the run directory")
    records = []
    for path in logs:
        for line_no, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise BadFileError(f"{path}:{line_no}: bad JSON: {err}") from err
    return records


def pair_judge(judge_cfg: DictConfig):
    """The configured ``PairJudge``, or None when ``data.judge.base_url`` is null."""
    if judge_cfg.base_url is None:
        return None
    from darling.quality.judge import JudgeQuality
    from darling.workshop.labelling import DEFAULT_JUDGE_PROMPT, LabelCache, PairJudge

    if judge_cfg.model is None:
        raise ConfigError("data.judge.base_url is set but data.judge.model is null: name the model")
    client = JudgeQuality(judge_cfg.base_url, judge_cfg.model, api_key_env=judge_cfg.api_key_env,
                          timeout_s=judge_cfg.timeout_s, retries=judge_cfg.retries,
                          max_workers=judge_cfg.max_workers, max_tokens=4)
    prompt = Path(to_absolute_path(judge_cfg.prompt_path)) if judge_cfg.prompt_path else (
        DEFAULT_JUDGE_PROMPT)
    cache = LabelCache(to_absolute_path(judge_cfg.cache)) if judge_cfg.cache else None
    return PairJudge(client, prompt.read_text(), cache)


@dataclass
class InDomain:
    """The in-domain pairs of a run and what was held out of them."""

    rows: list[PairRow]
    counts: dict
    heldout_records: list[dict]  # rollouts of the held-out categories (never mined)
    prompts: dict  # prompt id -> PromptRow


def rollout_pairs(data: DictConfig) -> InDomain:
    """Mine, label and count the in-domain pairs of run ``data.run``, leaving out the rollouts
    of ``data.holdout_categories`` (a share of the run's prompt categories)."""
    from darling.tasks.prompts import builtin_path, load_prompts
    from darling.workshop.labelling import label_pairs, verifier_key
    from darling.workshop.mining import class_key, heldout_categories, mine_pairs

    run_dir = Path(to_absolute_path(data.run))
    if not (run_dir / "config.yaml").is_file():
        raise MissingPathError(f"{run_dir} has no config.yaml: data.run must be a run "
                                "directory written by train.py")
    prompt_path = OmegaConf.load(run_dir / "config.yaml").data.train_path or builtin_path("train")
    prompts = {row.id: row for row in load_prompts(prompt_path)}
    records = read_rollouts(run_dir)
    if data.holdout_categories and any(row.kind == "open" for row in prompts.values()):
        raise ConfigError(f"data.holdout_categories={data.holdout_categories}: measuring on "
                         f"held-out categories needs verifiable prompts; {prompt_path} is open")

    def category(record: dict) -> str:
        row = prompts.get(str(record.get("prompt_id")))
        return row.category if row is not None and row.category else str(record.get("prompt_id"))

    categories = [category(r) for r in records]
    held_out = heldout_categories(categories, data.holdout_categories, data.seed)

    def key(record: dict):
        row = prompts.get(str(record.get("prompt_id")))
        answer = verifier_key(record["response"], row) if row is not None else None
        return answer if answer is not None else class_key(record)

    mined_from = [r for r, c in zip(records, categories, strict=True) if c not in held_out]
    mined = mine_pairs(mined_from, data.max_pairs, data.seed, key=key)
    rows, counts = label_pairs(mined, prompts, pair_judge(data.judge), source=data.run)
    counts = {**counts, "rollouts": len(mined_from), "prompts": str(prompt_path),
              "heldout_categories": sorted(held_out)}
    heldout_records = [r for r, c in zip(records, categories, strict=True) if c in held_out]
    return InDomain(rows, counts, heldout_records, prompts)


def load_data(data: DictConfig) -> tuple[list[PairRow], str, InDomain | None]:
    """``(rows, description for the model card, the in-domain pairs or None)``."""
    human = load_pairs(to_absolute_path(data.path)) if data.path else []
    if data.source == "human":
        return human, data.path, None
    in_domain = rollout_pairs(data)
    if not in_domain.rows:
        raise ConfigError(f"no labelled pairs from {data.run}: {in_domain.counts}")
    description = (f"{len(in_domain.rows)} in-domain pairs from the rollouts of {data.run}"
                   + (f" + {len(human)} human pairs from {data.path}" if human else ""))
    return human + in_domain.rows, description, in_domain


def calibration_labelers(data: DictConfig) -> tuple[str, ...] | None:
    """Labellers whose validation pairs set the threshold (``data.calibrate_on``); None = all."""
    choice = data.get("calibrate_on", "all")
    if choice not in ("all", "in_domain"):
        raise ConfigError(f"data.calibrate_on={choice}: choose all or in_domain")
    if choice == "in_domain" and data.source != "rollouts":
        raise ConfigError("data.calibrate_on=in_domain needs in-domain pairs: use data=rollouts")
    return IN_DOMAIN if choice == "in_domain" else None


def heldout_agreement(classifier, in_domain: InDomain, max_groups: int, seed: int) -> dict:
    """False split and false merge of ``classifier``'s classes on groups of the held-out
    categories, against the verifier's answers (``darling.metrics.agreement``): pairs of
    correct rollouts on answer-set prompts, pairs of rollouts with a final answer on
    ground-truth prompts. At most ``max_groups`` groups, a seeded sample."""
    from darling.metrics.agreement import class_agreement
    from darling.workshop.labelling import verifier_key

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in in_domain.heldout_records:
        groups[(int(record["step"]), str(record["group_id"]))].append(record)
    keys = sorted(groups)
    if len(keys) > max_groups:
        keys = sorted(random.Random(seed).sample(keys, max_groups))
    members = [(k, r) for k in keys for r in groups[k]]
    labels, _ = classifier.labels([r["response"] for _, r in members], [k for k, _ in members],
                                  [in_domain.prompts[str(r["prompt_id"])] for _, r in members])
    answered: dict[tuple, list] = defaultdict(list)
    for (k, record), label in zip(members, labels, strict=True):
        row = in_domain.prompts[str(record["prompt_id"])]
        answer = verifier_key(record["response"], row)
        if answer is not None and (row.kind != "answers" or answer[0] == "answer"):
            answered[k].append((answer, int(label)))
    return {**class_agreement(answered.values()), "groups": float(len(keys))}


def human_val_auc(classifiers: dict, rows: list[PairRow], data: DictConfig, seed: int) -> dict:
    """ROC-AUC of each classifier on the human pairs of the validation prompts: the pairs the
    shipped default was validated on when it was trained with the same file, ``seed`` and
    ``val_fraction`` (the split hashes each prompt, so adding in-domain pairs leaves it as is).
    Issue 12's check that the in-domain pairs cost the human pairs at most 0.02."""
    from darling.partition.calibration import roc_auc
    from darling.workshop.pairs_data import split_by_prompt

    _, val = split_by_prompt(rows, data.val_fraction, seed)
    human = [r for r in val if r.labeler not in IN_DOMAIN]
    pairs, labels = [(r.text_a, r.text_b) for r in human], [r.label for r in human]
    scores = {name: roc_auc(labels, clf.predict_proba(pairs)) for name, clf in classifiers.items()}
    return {"pairs": float(len(human)), **scores}


