"""The partition interface: one protocol and one entry point for every partition function.

Every partition function of darling implements ``Partition``:

    labels(texts, group_ids, rows) -> (labels, metrics)

``labels`` has shape ``(N,)``, int64, one class per rollout, classes never crossing groups,
numbered by first appearance; ``rows[i]`` is the prompt row of ``texts[i]`` (used by key
partitions, ignored by pair classifiers); ``metrics`` is a dict of floats to log. Two kinds
implement it:

- a **pair classifier** (``darling.partition.base.PairClassifier``): all within-group pairs are
  scored, pairs above ``threshold_`` are merged by union-find
  (``darling.partition.unionfind.union_find_partition``);
- a **key partition** (``darling.partition.keyed.KeyPartition``): equal keys of one group are one
  class.

Training and evaluation call every partition function through ``partition_rollouts``, which
checks the lengths and the result and never looks at the type.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from darling.groups import check_lengths


@runtime_checkable
class Partition(Protocol):
    """``labels(texts, group_ids, rows) -> (labels (N,) int64, metrics)``: see the module doc."""

    def labels(
        self, texts: Sequence[str], group_ids: Sequence[Hashable], rows: Sequence[Any] | None
    ) -> tuple[np.ndarray, dict[str, float]]: ...


def partition_rollouts(
    texts: Sequence[str],
    group_ids: Sequence[Hashable],
    rows: Sequence[Any] | None,
    partition: Partition,
) -> tuple[np.ndarray, dict[str, float]]:
    """``partition.labels(texts, group_ids, rows)`` with the lengths and the result checked:
    the one call site of every partition function in training and evaluation."""
    check_lengths(len(texts), group_ids)
    if rows is not None and len(rows) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(rows)} prompt rows")
    if not isinstance(partition, Partition):
        raise TypeError(
            f"{type(partition).__name__} is not a partition function: it needs a method "
            "labels(texts, group_ids, rows) -> (labels, metrics) (a PairClassifier or a "
            "KeyPartition)"
        )
    labels, metrics = partition.labels(texts, group_ids, rows)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(texts),):
        raise ValueError(
            f"{type(partition).__name__}.labels returned shape {labels.shape} for {len(texts)} "
            "texts"
        )
    return labels, metrics
