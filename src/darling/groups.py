"""Explicit groups: every rollout carries the id of its prompt.

Group-level functions in darling take ``group_ids`` (one hashable id per rollout) and never assume
that a batch is laid out as ``view(-1, n)``. This module turns ids into index lists once.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def group_indices(group_ids: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
    """Map each group id to the positions of its rollouts, in order of first appearance.

    >>> {k: v.tolist() for k, v in group_indices(["b", "a", "b"]).items()}
    {'b': [0, 2], 'a': [1]}
    """
    members: dict[Hashable, list[int]] = {}
    for position, gid in enumerate(as_list(group_ids)):
        members.setdefault(gid, []).append(position)
    return {gid: np.asarray(pos, dtype=np.int64) for gid, pos in members.items()}


def dense_group_index(group_ids: Sequence[Hashable]) -> np.ndarray:
    """Relabel group ids as 0..G-1 in order of first appearance. Shape ``(N,)``, int64.

    >>> dense_group_index(["x", "y", "x"]).tolist()
    [0, 1, 0]
    """
    ids = as_list(group_ids)
    seen: dict[Hashable, int] = {}
    return np.asarray([seen.setdefault(g, len(seen)) for g in ids], dtype=np.int64)


def check_lengths(n: int, group_ids: Sequence[Hashable], what: str = "texts") -> None:
    """Raise a ValueError that names both lengths when ``len(group_ids) != n``."""
    if len(group_ids) != n:
        raise ValueError(
            f"got {n} {what} but {len(group_ids)} group_ids: pass exactly one group id per rollout"
        )


def as_list(group_ids: Sequence[Hashable]) -> list[Hashable]:
    """A list of plain Python values from a list, tuple or array (``ndarray.tolist``)."""
    if hasattr(group_ids, "tolist"):
        return list(group_ids.tolist())
    return list(group_ids)
