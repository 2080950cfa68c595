"""Honest validation folds for pair classifiers: leave one labeller out, and across prompt sources.

A prompt-disjoint split of the NoveltyBench pairs still shares labellers and prompt sources with
training, and it overstated generalisation (issue 12: 0.837 there, 0.753 on new labellers). These
folds hold out what a new user's data changes:

- ``labeller_folds``: one fold per labeller ``l``; validation = the pairs ``l`` labelled, training
  = every other pair (so no pair of ``l`` is trained on);
- ``source_folds``: one fold per prompt source ``s`` (``WildChat`` / ``curated``, the ``id``
  prefix); validation = the pairs of prompts from ``s``, training = the other sources.

Rows flagged ``fixed_train`` (e.g. in-domain rollout pairs mixed into human pairs) are in every
training part and never validated. A backend is scored by ``score_folds``: fit on the training
part, ROC-AUC on the validation part, per fold, plus mean and min over the labeller folds.
Pure: indices and labels in, numbers out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from darling.partition.calibration import roc_auc


@dataclass(frozen=True)
class Fold:
    """One validation fold: ``train`` and ``val`` are row indices, disjoint."""

    kind: str  # "labeller" or "source"
    name: str  # the held-out labeller or source
    train: tuple[int, ...]
    val: tuple[int, ...]


def prompt_source(pair_id: str) -> str:
    """The prompt source of a NoveltyBench pair: its ``id`` up to the first ``-``.

    >>> prompt_source("WildChat-322e6c8d"), prompt_source("curated-17"), prompt_source("x")
    ('WildChat', 'curated', 'x')
    """
    return pair_id.split("-", 1)[0]


def _leave_one_out(
    kind: str, keys: Sequence[str], fixed_train: Sequence[bool] | None
) -> list[Fold]:
    fixed = [False] * len(keys) if fixed_train is None else list(fixed_train)
    if len(fixed) != len(keys):
        raise ValueError(f"got {len(keys)} {kind}s but {len(fixed)} fixed_train flags")
    held = sorted({k for k, f in zip(keys, fixed, strict=True) if not f})
    if len(held) < 2:
        raise ValueError(
            f"{kind} folds need pairs of at least two {kind}s, got {held}: "
            f"check the `{'labeler' if kind == 'labeller' else 'id'}` field of the pairs file"
        )
    folds = []
    for name in held:
        val = tuple(i for i, (k, f) in enumerate(zip(keys, fixed, strict=True))
                    if k == name and not f)
        train = tuple(i for i, k in enumerate(keys) if k != name or fixed[i])
        folds.append(Fold(kind, name, train, val))
    return folds


def labeller_folds(
    labellers: Sequence[str], fixed_train: Sequence[bool] | None = None
) -> list[Fold]:
    """Leave-one-labeller-out folds over ``labellers[i]``, the labeller of pair ``i``.

    >>> [(f.name, f.train, f.val) for f in labeller_folds(["a", "b", "a"])]
    [('a', (1,), (0, 2)), ('b', (0, 2), (1,))]
    """
    return _leave_one_out("labeller", labellers, fixed_train)


def source_folds(sources: Sequence[str], fixed_train: Sequence[bool] | None = None) -> list[Fold]:
    """Cross-source folds: train on every other prompt source, validate on one."""
    return _leave_one_out("source", sources, fixed_train)


Scorer = Callable[[Sequence[int], Sequence[int]], np.ndarray]
"""``scorer(train_indices, val_indices) -> scores`` of shape ``(len(val_indices),)``: fit a fresh
classifier on the training rows, score the validation rows."""


def score_folds(scorer: Scorer, labels: Sequence[int], folds: Sequence[Fold]) -> dict:
    """ROC-AUC of ``scorer`` on each fold, and its mean and min per fold kind.

    Returns ``{"folds": {"<kind>/<name>": auc}, "<kind>/mean": ..., "<kind>/min": ...}``. A fold
    whose validation part has one class only has no ROC-AUC: it raises, since silently dropping
    it would change the mean.
    """
    y = np.asarray(labels, dtype=np.int64)
    out: dict = {"folds": {}}
    by_kind: dict[str, list[float]] = {}
    for fold in folds:
        scores = np.asarray(scorer(fold.train, fold.val), dtype=np.float64)
        if scores.shape != (len(fold.val),):
            raise ValueError(f"scorer returned shape {scores.shape} for {len(fold.val)} pairs")
        auc = roc_auc(y[list(fold.val)], scores)
        out["folds"][f"{fold.kind}/{fold.name}"] = auc
        by_kind.setdefault(fold.kind, []).append(auc)
    for kind, aucs in by_kind.items():
        out[f"{kind}/mean"] = float(np.mean(aucs))
        out[f"{kind}/min"] = float(np.min(aucs))
    return out


def fold_table(results: dict[str, dict], folds: Sequence[Fold]) -> str:
    """Markdown table: one row per fold (with its validation size), one column per backend,
    then the mean and min of each fold kind."""
    names = list(results)
    lines = ["| fold | pairs | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for fold in folds:
        key = f"{fold.kind}/{fold.name}"
        cells = [f"{results[n]['folds'][key]:.3f}" for n in names]
        lines.append(f"| {key} | {len(fold.val)} | " + " | ".join(cells) + " |")
    for kind in dict.fromkeys(f.kind for f in folds):
        for stat in ("mean", "min"):
            cells = [f"{results[n][f'{kind}/{stat}']:.3f}" for n in names]
            lines.append(f"| {kind} {stat} | | " + " | ".join(cells) + " |")
    return "\n".join(lines)
