"""Threshold calibration and pair-classification metrics (pure numpy).

Thresholds belong to the trained classifier (spec section 2): they are chosen on held-out pairs by
best F1 (or best accuracy) and saved with it. Decisions are ``p > threshold``, the rule that
``partition`` applies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_arrays(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"got {len(y)} labels but {len(s)} scores")
    if len(y) == 0:
        raise ValueError("need at least one labelled score")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve, the Mann-Whitney statistic with ties counted as one half.

    ``AUC = (sum of ranks of positives - P (P + 1) / 2) / (P N)`` with average ranks for ties,
    ``P`` positives and ``N`` negatives. Raises ValueError when only one class is present.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])  # 3 of 4 (pos, neg) pairs ordered
    0.75
    """
    y, s = _as_arrays(labels, scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC-AUC needs both classes among the labels")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    start = 0
    while start < len(s):  # average rank over each run of tied scores
        stop = start
        while stop + 1 < len(s) and sorted_s[stop + 1] == sorted_s[start]:
            stop += 1
        ranks[order[start : stop + 1]] = 0.5 * (start + stop) + 1.0
        start = stop + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _candidate_thresholds(s: np.ndarray) -> np.ndarray:
    """Thresholds between consecutive distinct scores, plus one below all of them.

    With decisions ``p > t``, every achievable labelling of the pairs is reached by one of these.
    """
    distinct = np.unique(s)
    mids = (distinct[:-1] + distinct[1:]) / 2
    return np.concatenate([[distinct[0] - 1e-6], mids, [distinct[-1]]])


def _confusion(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """True/false positives and negatives of ``s > t`` for each threshold. Each shape ``(T,)``."""
    pred = s[None, :] > thresholds[:, None]
    tp = (pred & (y == 1)).sum(1)
    fp = (pred & (y == 0)).sum(1)
    fn = (~pred & (y == 1)).sum(1)
    tn = (~pred & (y == 0)).sum(1)
    return tp, fp, fn, tn


def best_f1_threshold(labels: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """Threshold maximising ``F1 = 2 TP / (2 TP + FP + FN)`` of ``scores > t``.

    Returns ``(threshold, f1)``; among equal F1 the lowest threshold wins.

    >>> best_f1_threshold([0, 1, 1], [0.2, 0.6, 0.9])
    (0.4, 1.0)
    """
    y, s = _as_arrays(labels, scores)
    thresholds = _candidate_thresholds(s)
    tp, fp, fn, _ = _confusion(y, s, thresholds)
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


def best_accuracy_threshold(labels: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """Threshold maximising accuracy ``(TP + TN) / n`` of ``scores > t``. Returns ``(t, acc)``."""
    y, s = _as_arrays(labels, scores)
    thresholds = _candidate_thresholds(s)
    tp, _, _, tn = _confusion(y, s, thresholds)
    accuracy = (tp + tn) / len(y)
    best = int(np.argmax(accuracy))
    return float(thresholds[best]), float(accuracy[best])


def classification_report(
    labels: Sequence[int], proba: Sequence[float], threshold: float
) -> dict[str, float]:
    """ROC-AUC plus accuracy, F1, precision, recall and predicted-positive share at ``p > t``.

    Precision (recall) is 0 when nothing is predicted (labelled) positive. ``roc_auc`` is NaN when
    only one class is present.
    """
    y, p = _as_arrays(labels, proba)
    pred = p > threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    both_classes = 0 < y.sum() < len(y)
    return {
        "roc_auc": roc_auc(y, p) if both_classes else float("nan"),
        "accuracy": float((pred == (y == 1)).mean()),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "positives_share": float(pred.mean()),
        "threshold": float(threshold),
        "n": float(len(y)),
    }
