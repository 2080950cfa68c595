"""The fold table of ``train_classifier.py`` (``folds.enabled=true``): every configured backend
scored on the folds of ``darling.workshop.folds``, each fold logged as it ends."""

from __future__ import annotations

import itertools
import logging
import time

from omegaconf import DictConfig, OmegaConf

from darling.workshop.in_domain import IN_DOMAIN
from darling.workshop.pairs_data import PairRow

log = logging.getLogger(__name__)


def fold_report(rows: list[PairRow], cfg: DictConfig) -> str:
    """The fold table of every configured backend (``darling.workshop.folds``). With in-domain
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
    from darling.workshop.fold_scorers import build_scorers
    from darling.workshop.folds import (
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


