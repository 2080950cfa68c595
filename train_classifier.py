"""Train, calibrate and save the partition's pair classifier (thin Hydra shell).

    python train_classifier.py    # the shipped default, see conf/train_classifier.yaml
    python train_classifier.py classifier.epochs=3 output_dir=runs/clf

The procedure lives in ``darling.partition.training.train_and_calibrate``.
"""

from __future__ import annotations

import json
import logging
import sys

import hydra
import torch
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig

from darling.partition.pairs_data import load_pairs
from darling.partition.training import save_with_card, train_and_calibrate

log = logging.getLogger(__name__)


@hydra.main(config_path="conf", config_name="train_classifier", version_base="1.3")
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(cfg.threads)
    rows = load_pairs(to_absolute_path(cfg.data.path))
    classifier, report = train_and_calibrate(
        rows, instantiate(cfg.classifier), cfg.data.val_fraction, cfg.seed,
        encoder_for_baseline=cfg.baseline_encoder,
    )
    command = " ".join(["python train_classifier.py", *sys.argv[1:]])
    out = save_with_card(classifier, report, to_absolute_path(cfg.output_dir), command,
                         data=cfg.data.path)
    log.info("validation: %s", json.dumps(report["val"], indent=1))
    log.info("baselines: %s", json.dumps(report["baselines"], indent=1))
    log.info("saved to %s", out)


if __name__ == "__main__":
    main()
