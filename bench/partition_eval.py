"""Extra measurements of a trained embed-once classifier on the NoveltyBench pairs.

1. Validation metrics of the shipped classifier as it is (its saved threshold, the current
   short-answer rule): ROC-AUC, F1, accuracy, precision and recall at the saved threshold, the
   best-F1 and best-accuracy thresholds, and how many pairs the short-answer rule decided.
2. Chunking: validation ROC-AUC of the same weights with long responses chunked and pooled
   (``chunking="pool"``, the default) versus truncated to the first 256-piece window.
3. ``--lolo``: leave-one-labeller-out ROC-AUC of the head on *frozen* MiniLM embeddings (fit on
   the pairs of seven labellers, scored on the eighth), next to the untrained cosine and Jaccard
   baselines, to see how far the classifier generalises across people rather than prompts.

    python bench/partition_eval.py --lolo
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from darling.partition import DEFAULT_CLASSIFIER_DIR, load_classifier
from darling.partition.base import short_answer_rule
from darling.partition.calibration import roc_auc
from darling.partition.embed_once import EmbedOnceClassifier, pair_lexical_features
from darling.partition.lexical import JaccardClassifier
from darling.workshop.pairs_data import load_pairs, split_by_prompt
from darling.workshop.training import evaluate_scores


def validation_report(classifier, rows) -> dict[str, float]:
    """Metrics of ``classifier`` at its saved ``threshold_`` on ``rows``, plus the share of pairs
    the short-answer rule decided (no model involved)."""
    pairs = [(r.text_a, r.text_b) for r in rows]
    labels = [r.label for r in rows]
    report = evaluate_scores(labels, classifier.predict_proba(pairs), classifier.threshold_)
    report["rule_decided_pairs"] = sum(short_answer_rule(a, b) is not None for a, b in pairs)
    return report


def chunking_auc(classifier: EmbedOnceClassifier, rows) -> dict[str, float]:
    """Validation ROC-AUC of the classifier with ``chunking`` set to pool and to truncate."""
    pairs = [(r.text_a, r.text_b) for r in rows]
    labels = [r.label for r in rows]
    original = classifier.chunking
    out = {}
    for mode in ("pool", "truncate"):
        out[mode] = roc_auc(labels, classifier.set_params(chunking=mode).predict_proba(pairs))
    classifier.set_params(chunking=original)
    return out


def leave_one_labeller_out(rows) -> list[dict[str, float | str]]:
    """Per held-out labeller: ROC-AUC of a frozen-encoder head fit on the other labellers."""
    frozen = EmbedOnceClassifier(tuned_layers=0)
    distinct = list(dict.fromkeys(t for r in rows for t in (r.text_a, r.text_b)))
    position = {t: k for k, t in enumerate(distinct)}
    emb = frozen.embed(distinct)
    index = np.asarray([(position[r.text_a], position[r.text_b]) for r in rows])
    cosine = (emb[index[:, 0]] * emb[index[:, 1]]).sum(1)
    lexical = pair_lexical_features(distinct, index)
    jaccard = JaccardClassifier().predict_proba([(r.text_a, r.text_b) for r in rows])
    y = torch.as_tensor([r.label for r in rows])
    labellers = np.asarray([r.labeler for r in rows])
    table = []
    for held_out in sorted(set(labellers)):
        test = torch.as_tensor(labellers == held_out)
        frozen.fit_head(cosine[~test], lexical[~test], y[~test].tolist())
        proba = frozen.head_proba(cosine[test], lexical[test])
        labels = y[test].tolist()
        table.append({
            "labeller": held_out,
            "pairs": int(test.sum()),
            "head_frozen": roc_auc(labels, proba),
            "cosine": roc_auc(labels, cosine[test].numpy()),
            "jaccard": roc_auc(labels, jaccard[test.numpy()]),
        })
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER_DIR))
    parser.add_argument("--data", default="../shared/data/noveltybench-pairs/train.jsonl")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0, help="prompt-split seed (as in training)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lolo", action="store_true", help="also run leave-one-labeller-out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = load_pairs(args.data)
    _, val = split_by_prompt(rows, args.val_fraction, args.seed)
    classifier = load_classifier(args.classifier)
    report = validation_report(classifier, val)
    print(f"validation ({len(val)} pairs) at the saved threshold {report['threshold']:.4f}: "
          f"ROC-AUC {report['roc_auc']:.4f}, F1 {report['f1']:.4f}, "
          f"accuracy {report['accuracy']:.4f}, precision {report['precision']:.4f}, "
          f"recall {report['recall']:.4f}; best F1 {report['best_f1']:.4f} "
          f"(threshold {report['best_f1_threshold']:.4f}), best accuracy "
          f"{report['best_accuracy']:.4f} (threshold {report['best_accuracy_threshold']:.4f}); "
          f"pairs decided by the short-answer rule: {report['rule_decided_pairs']}")
    auc = chunking_auc(classifier, val)
    print(f"validation ROC-AUC, chunk+pool: {auc['pool']:.4f}, truncate: {auc['truncate']:.4f}")
    if args.lolo:
        table = leave_one_labeller_out(rows)
        print("labeller | pairs | frozen head | cosine | jaccard")
        for row in table:
            print(f"{row['labeller']} | {row['pairs']} | {row['head_frozen']:.3f} | "
                  f"{row['cosine']:.3f} | {row['jaccard']:.3f}")
        means = {k: np.mean([r[k] for r in table]) for k in ("head_frozen", "cosine", "jaccard")}
        print(f"mean | | {means['head_frozen']:.3f} | {means['cosine']:.3f} | "
              f"{means['jaccard']:.3f}")


if __name__ == "__main__":
    main()
