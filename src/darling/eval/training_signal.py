"""How much a run's reward changed the learning signal, relative to quality alone.

Computed from a run's rollout log (``rollouts/rank*.jsonl``: training prompts only), so it says
what the diversity term did during training without touching held-out prompts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np

from darling.metrics.agreement import class_agreement


def training_signal(
    rows: Iterable[Mapping], answer_of: Callable[[Mapping], Hashable | None] | None = None
) -> dict[str, float]:
    """Compare each rollout's advantage ``A_i`` with its quality-only advantage
    ``A^q_i = q_i - mean_{j in g} q_j`` (mean-centred GRPO on the same rollouts).

    ``rows``: one mapping per rollout with ``step``, ``group_id``, ``quality`` and ``advantage``;
    a group is ``(step, group_id)``; rows whose quality is missing or NaN (failed scoring) are
    left out of the advantage statistics (the partition check below needs no quality).

    Returns
    - ``signal/groups``: number of groups;
    - ``signal/flat_share``: share of groups whose advantages are all zero (no gradient);
    - ``signal/shift_mean``: mean ``|A_i - A^q_i|`` over rollouts (0 for GRPO);
    - ``signal/sign_flip_share``: share of rollouts with ``sign(A_i) != sign(A^q_i)``;
    - ``signal/top_spread``: over groups with at least two rollouts of the group's best quality,
      that quality being positive, the mean range of their advantages. With a binary quality GRPO
      gives every correct answer the same advantage (spread 0); a diversity term that favours rare
      correct answers widens it.

    With ``answer_of`` (a rollout's canonical correct answer, ``None`` when it is not correct), the
    logged partition (each row's ``class``) is also checked against the answers:
    ``signal/false_merge`` and ``signal/false_split`` of ``partition_agreement``.
    """
    rows = list(rows)
    groups: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        q = row.get("quality")
        if q is None or math.isnan(q):
            continue
        groups[(row["step"], row["group_id"])].append((float(q), float(row["advantage"])))
    shifts, flips, spreads, flat = [], [], [], 0
    for members in groups.values():
        q, a = np.array(members).T
        a_q = q - q.mean()
        shifts.extend(np.abs(a - a_q))
        flips.extend(np.sign(np.round(a, 9)) != np.sign(np.round(a_q, 9)))
        flat += bool(np.all(a == 0))
        top = a[q == q.max()]
        if len(top) >= 2 and q.max() > 0:
            spreads.append(top.max() - top.min())
    n = len(groups)
    return {
        "signal/groups": float(n),
        "signal/flat_share": flat / n if n else float("nan"),
        "signal/shift_mean": float(np.mean(shifts)) if shifts else float("nan"),
        "signal/sign_flip_share": float(np.mean(flips)) if flips else float("nan"),
        "signal/top_spread": float(np.mean(spreads)) if spreads else float("nan"),
    } | ({f"signal/{k}": v for k, v in partition_agreement(rows, answer_of).items()}
         if answer_of else {})


def partition_agreement(
    rows: Iterable[Mapping], answer_of: Callable[[Mapping], Hashable | None],
    classes: Sequence[Hashable] | None = None,
) -> dict[str, float]:
    """A partition of logged rollouts checked against their canonical answers, over pairs of
    correct rollouts (``answer_of(row)`` not ``None``) of one group ``(step, group_id)``:

    - ``false_merge``: share of pairs with different answers that share a class;
    - ``false_split``: share of pairs with the same answer that are in different classes.

    The classes are each row's ``class`` (the partition the run logged), or ``classes[i]`` for
    ``rows[i]`` (another partition of the same rollouts, e.g. one classifier applied to every
    arm's rollouts). NaN where no pair of that kind exists."""
    rows = list(rows)
    if classes is not None and len(classes) != len(rows):
        raise ValueError(f"got {len(classes)} classes for {len(rows)} rollouts")
    answered: dict[tuple, list[tuple[Hashable, Hashable]]] = defaultdict(list)
    for i, row in enumerate(rows):
        answer = answer_of(row)
        if answer is not None:
            label = row["class"] if classes is None else classes[i]
            answered[(row["step"], row["group_id"])].append((answer, label))
    agreement = class_agreement(answered.values())
    return {k: agreement[k] for k in ("false_merge", "false_split")}
