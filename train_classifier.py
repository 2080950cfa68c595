"""Train, calibrate and save the partition's pair classifier (thin Hydra shell).

    python train_classifier.py    # the shipped default, see conf/train_classifier/config.yaml
    python train_classifier.py classifier.epochs=3 output_dir=runs/clf
    python train_classifier.py folds.enabled=true train=false    # the fold table only
    python train_classifier.py data=rollouts data.run=runs/<name>  # in-domain classifier
    python train_classifier.py classifier=cross_encoder output_dir=runs/ce  # another backend

The procedure lives in ``darling.partition.training.train_and_calibrate``; the fold table in
``darling.partition.folds``; the in-domain pairs in ``darling.partition.mining`` and
``darling.partition.labelling``.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf

from darling.errors import (
    BadFileError,
    ConfigError,
    MissingPathError,
    check_command_line,
    user_errors,
)
from darling.partition.pairs_data import PairRow, load_pairs
from darling.partition.training import save_with_card, train_and_calibrate

log = logging.getLogger(__name__)

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
    from darling.partition.labelling import DEFAULT_JUDGE_PROMPT, LabelCache, PairJudge
    from darling.quality.judge import JudgeQuality

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
    from darling.partition.labelling import label_pairs, verifier_key
    from darling.partition.mining import class_key, heldout_categories, mine_pairs
    from darling.tasks.prompts import builtin_path, load_prompts

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
    categories, against the verifier's answers (``darling.partition.agreement``): pairs of
    correct rollouts on answer-set prompts, pairs of rollouts with a final answer on
    ground-truth prompts. At most ``max_groups`` groups, a seeded sample."""
    from darling.partition.agreement import class_agreement
    from darling.partition.labelling import verifier_key

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
    from darling.partition.pairs_data import split_by_prompt

    _, val = split_by_prompt(rows, data.val_fraction, seed)
    human = [r for r in val if r.labeler not in IN_DOMAIN]
    pairs, labels = [(r.text_a, r.text_b) for r in human], [r.label for r in human]
    scores = {name: roc_auc(labels, clf.predict_proba(pairs)) for name, clf in classifiers.items()}
    return {"pairs": float(len(human)), **scores}


def human_val_section(result: dict, data: DictConfig, seed: int) -> str:
    """Model-card section (and log table) of ``human_val_auc``."""
    names = [k for k in result if k != "pairs"]
    lines = ["## Human validation pairs", "",
             f"ROC-AUC on the {result['pairs']:.0f} human pairs of the validation prompts "
             f"(`{data.path}`, seed {seed}, validation fraction {data.val_fraction}; the shipped "
             "default was trained with the same split, so it never saw them).", "",
             "| classifier | ROC-AUC |", "|---|---|"]
    lines += [f"| {name} | {result[name]:.3f} |" for name in names]
    if len(names) == 2:
        lines += ["", f"Change: {result[names[0]] - result[names[1]]:+.3f}."]
    return "\n".join(lines + [""])


def heldout_section(results: dict[str, dict], categories: list[str]) -> str:
    """Model-card section (and log table) of ``heldout_agreement`` per classifier."""
    first = next(iter(results.values()))
    lines = ["## Held-out categories", "",
             f"Rollouts of {len(categories)} categories kept out of mining "
             f"({', '.join(categories)}): {first['groups']:.0f} groups, "
             f"{first['same_pairs']:.0f} pairs with the same answer, "
             f"{first['different_pairs']:.0f} with different answers.", "",
             "| classifier | false split | false merge |", "|---|---|---|"]
    lines += [f"| {name} | {r['false_split']:.3f} | {r['false_merge']:.3f} |"
              for name, r in results.items()]
    return "\n".join(lines + [""])


def fold_report(rows: list[PairRow], cfg: DictConfig) -> str:
    """The fold table of every configured backend (``darling.partition.folds``). With in-domain
    pairs (always in the training parts, never validated) a second table gives each backend's
    leave-one-labeller-out mean ROC-AUC on the human pairs trained without them and with them,
    and the change (issue 12: the in-domain pairs must not cost more than 0.02)."""
    table, with_in_domain = _fold_results(rows, cfg)
    if not any(r.labeler in IN_DOMAIN for r in rows):
        return table
    _, human_only = _fold_results([r for r in rows if r.labeler not in IN_DOMAIN], cfg)
    lines = ["", "| backend | labeller mean, human pairs only | with the in-domain pairs "
             "| change |", "|---|---|---|---|"]
    for name, result in with_in_domain.items():
        before, after = human_only[name]["labeller/mean"], result["labeller/mean"]
        lines.append(f"| {name} | {before:.3f} | {after:.3f} | {after - before:+.3f} |")
    return table + "\n" + "\n".join(lines)


def _fold_results(rows: list[PairRow], cfg: DictConfig) -> tuple[str, dict[str, dict]]:
    from darling.partition.fold_scorers import build_scorers
    from darling.partition.folds import (
        fold_table,
        labeller_folds,
        prompt_source,
        score_folds,
        source_folds,
    )

    fixed = [r.labeler in IN_DOMAIN for r in rows]  # in every training part, never validated
    sources = [prompt_source(r.id) for r in rows]
    folds = labeller_folds([r.labeler for r in rows], fixed)
    if len({s for s, f in zip(sources, fixed, strict=True) if not f}) > 1:  # else no such fold
        folds += source_folds(sources, fixed)
    # the `finetuned` row refits the configured recipe when it is embed-once, else the default's
    params = OmegaConf.to_container(cfg.classifier)
    embed_once = params.pop("_target_").endswith(".EmbedOnceClassifier")
    scorers = build_scorers(rows, list(cfg.folds.backends), encoder=cfg.baseline_encoder,
                            finetuned_params=params if embed_once else None,
                            cross_encoder_params=OmegaConf.to_container(cfg.folds.cross_encoder))
    labels = [r.label for r in rows]
    results = {name: score_folds(_logged(name, s, len(folds), labels), labels, folds)
               for name, s in scorers.items()}
    return fold_table(results, folds), results


def _logged(name: str, scorer, folds: int, labels: list[int]):
    """``scorer`` that logs each fold's ROC-AUC and wall time as it ends (the tuned rows take
    minutes per fold, so a run cut short still leaves its finished folds in the log)."""
    from darling.partition.calibration import roc_auc

    done = itertools.count(1)

    def run(train, val):
        start = time.perf_counter()
        scores = scorer(train, val)
        log.info("fold %d/%d of %s: ROC-AUC %.3f on %d validation pairs, trained on %d, %.0f s",
                 next(done), folds, name, roc_auc([labels[i] for i in val], scores), len(val),
                 len(train), time.perf_counter() - start)
        return scores

    return run


def card_section(counts: dict, data: DictConfig) -> str:
    """Model-card section on the in-domain pairs."""
    return "\n".join([
        "## In-domain pairs",
        "",
        f"Mined from {counts['rollouts']} rollouts of the run `{data.run}` (prompts: "
        f"`{counts['prompts']}`): pairs of distinct responses within one group, balanced between "
        f"same and different answers, at most {data.max_pairs}, seed {data.seed}. "
        f"{counts['mined']} mined: {counts['verifier']} labelled by the task's verifier, "
        f"{counts['judge']} by the LM judge "
        f"({data.judge.model if data.judge.base_url else 'none configured'}), "
        f"{counts['missing']} left unlabelled and not used; "
        f"{counts['equivalent']} labelled equivalent.",
        "",
    ])


@hydra.main(config_path="conf/train_classifier", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from darling.config import hydra_run_dir

    with user_errors(hydra_run_dir()):
        run(cfg)


def run(cfg: DictConfig) -> None:
    """Load the pairs, log the fold table, train, calibrate and save (``main`` without Hydra)."""
    torch.set_num_threads(cfg.threads)
    calibrate_labelers = calibration_labelers(cfg.data)
    rows, description, in_domain = load_data(cfg.data)
    if in_domain is not None:
        log.info("in-domain pairs: %s", json.dumps(in_domain.counts))
    if cfg.folds.enabled:
        log.info("fold ROC-AUC (%s):\n%s", description, fold_report(rows, cfg))
    if not cfg.train:
        return
    classifier, report = train_and_calibrate(
        rows, instantiate(cfg.classifier), cfg.data.val_fraction, cfg.seed,
        encoder_for_baseline=cfg.baseline_encoder, calibrate_labelers=calibrate_labelers,
    )
    command = " ".join(["python train_classifier.py", *sys.argv[1:]])
    out = save_with_card(classifier, report, to_absolute_path(cfg.output_dir), command,
                         data=description)
    if in_domain is not None:
        from darling.partition import load_default_classifier

        compared = {"this classifier": classifier, "shipped default": load_default_classifier()}
        sections = [card_section(in_domain.counts, cfg.data)]
        if any(r.labeler not in IN_DOMAIN for r in rows):
            human = human_val_auc(compared, rows, cfg.data, cfg.seed)
            (out / "human_val.json").write_text(json.dumps(human, indent=1) + "\n")
            sections.append(human_val_section(human, cfg.data, cfg.seed))
            log.info("human validation pairs:\n%s", sections[-1])
        if in_domain.heldout_records:
            results = {name: heldout_agreement(clf, in_domain, cfg.data.holdout_max_groups,
                                               cfg.seed) for name, clf in compared.items()}
            (out / "heldout.json").write_text(json.dumps(results, indent=1) + "\n")
            sections.append(heldout_section(results, in_domain.counts["heldout_categories"]))
            log.info("held-out categories:\n%s", sections[-1])
        with (out / "MODEL_CARD.md").open("a") as card:
            card.write("\n" + "\n".join(sections))
    log.info("validation: %s", json.dumps(report["val"], indent=1))
    log.info("baselines: %s", json.dumps(report["baselines"], indent=1))
    log.info("saved to %s", out)


if __name__ == "__main__":
    check_command_line(sys.argv[1:])
    main()
