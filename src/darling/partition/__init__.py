"""The learned partition function (spec section 2): pair classifiers and union-find classes.

``import darling.partition`` is cheap: the classifier backends (torch, transformers) are imported
on first attribute access, and no encoder is loaded until a classifier scores or fits.

Every partition function implements ``labels(texts, group_ids, rows) -> (labels, metrics)``
(``Partition``, ``darling.partition.protocol``): the pair classifiers (``PairClassifier``, merged
by union-find) and the key partitions (``AnswerSetPartition``, ``MathAnswerPartition``,
``ExactTextPartition``). Training and evaluation call them through one entry point,
``partition_rollouts``. The classifiers are fitted offline by ``darling.workshop``.

>>> from darling.partition import load_default_classifier, partition_rollouts  # doctest: +SKIP
>>> classifier = load_default_classifier()  # doctest: +SKIP
>>> labels, metrics = partition_rollouts(texts, group_ids, None, classifier)  # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from darling.partition.base import PairClassifier, load_classifier, short_answer_rule
from darling.partition.protocol import Partition, partition_rollouts

DEFAULT_CLASSIFIER_DIR = Path(__file__).parent / "pretrained" / "default"
"""The shipped classifier (package data), trained by ``train_classifier.py``."""

_LAZY = {
    "EmbedOnceClassifier": "darling.partition.embed_once",
    "CrossEncoderClassifier": "darling.partition.cross_encoder",
    "NgramOverlapClassifier": "darling.partition.lexical",
    "JaccardClassifier": "darling.partition.lexical",
    "KeyPartition": "darling.partition.keyed",
    "AnswerSetPartition": "darling.partition.keyed",
    "MathAnswerPartition": "darling.partition.keyed",
    "ExactTextPartition": "darling.partition.keyed",
    "GreedyPartition": "darling.partition.greedy",
}

__all__ = [
    "PairClassifier",
    "load_classifier",
    "load_default_classifier",
    "Partition",
    "partition_rollouts",
    "short_answer_rule",
    *_LAZY,
]


def load_default_classifier() -> PairClassifier:
    """The shipped default classifier (embed-once, fine-tuned all-MiniLM-L6-v2, calibrated)."""
    return load_classifier(DEFAULT_CLASSIFIER_DIR)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'darling.partition' has no attribute {name!r}")
