"""Train, calibrate and save the partition's pair classifier (the Hydra shell of the workshop).

    python -m darling.workshop    # or python train_classifier.py: the same program
    python -m darling.workshop classifier.epochs=3 output_dir=runs/clf
    python -m darling.workshop folds.enabled=true train=false    # the fold table only
    python -m darling.workshop data=rollouts data.run=runs/<name>  # in-domain classifier
    python -m darling.workshop classifier=cross_encoder output_dir=runs/ce  # another backend

The config is ``conf/train_classifier/`` of the source checkout. The procedure lives in
``darling.workshop.training.train_and_calibrate``; the fold table in
``darling.workshop.fold_report``; the in-domain pairs in ``darling.workshop.in_domain``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig

from darling.errors import check_command_line, user_errors
from darling.workshop.card_sections import card_section, heldout_section, human_val_section
from darling.workshop.fold_report import fold_report
from darling.workshop.in_domain import (
    IN_DOMAIN,
    calibration_labelers,
    heldout_agreement,
    human_val_auc,
    load_data,
)
from darling.workshop.training import save_with_card, train_and_calibrate

log = logging.getLogger(__name__)


def cli() -> None:
    """The command line: ``check_command_line``, then the Hydra ``main``."""
    check_command_line(sys.argv[1:])
    main()


CONFIG_DIR = Path(__file__).resolve().parents[3] / "conf" / "train_classifier"
"""``conf/train_classifier/`` of the source checkout (an absolute path: Hydra reads a relative
one against the package when ``main`` is imported by ``train_classifier.py``)."""


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
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

