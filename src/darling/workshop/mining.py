"""Mine response pairs from a training run's rollout log, for an in-domain classifier.

The DARLING authors trained their math partition classifier on in-domain pairs labelled by an
LM judge (issue 12, item 3). A run's rollout log (``rollouts/rank<r>.jsonl``, one record per
rollout: ``step``, ``group_id``, ``prompt_id``, ``response``, ``class``, ...) holds exactly the
pairs the partition sees: two responses of one group.

``mine_pairs`` takes pairs **within groups only** (a group is one ``(step, group_id)``), drops
pairs of identical texts (the classifier needs no training to call those equivalent) and pairs
already taken (the same two texts in another step), and **balances** them: with a provisional
key per rollout (``key(record)``: the verifier's answer where one exists, else the training
partition's ``class``), it takes as many same-key as different-key pairs, ``max_pairs // 2`` of
each at most, uniformly at random with ``seed``. When one kind is absent, up to ``max_pairs`` of
the other are taken (so human pairs must supply the missing class). Pure: records in, pairs out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

REQUIRED_FIELDS = ("step", "group_id", "prompt_id", "response")


@dataclass(frozen=True)
class MinedPair:
    """Two responses of one group of a run: ``(step, group_id)`` and the prompt's id."""

    step: int
    group_id: Any
    prompt_id: str
    text_a: str
    text_b: str
    same_key: bool  # the provisional key agreed (balancing only; labels come later)


def check_records(records: Sequence[dict], where: str = "rollout log") -> None:
    """Raise a ValueError naming the first record that lacks a field mining needs."""
    for k, record in enumerate(records):
        missing = [f for f in REQUIRED_FIELDS if f not in record]
        if missing:
            raise ValueError(f"{where}: record {k + 1} lacks {missing}; records come from "
                             "train.py with log_rollouts=true")


def class_key(record: dict) -> Hashable:
    """The training partition's class of a rollout (``class``; None for excluded rows)."""
    return record.get("class")


def mine_pairs(
    records: Sequence[dict],
    max_pairs: int,
    seed: int,
    key: Callable[[dict], Hashable] = class_key,
) -> list[MinedPair]:
    """Balanced within-group pairs of distinct responses (see the module docstring).

    Returns at most ``max_pairs`` pairs: same-key pairs first, then different-key pairs, each
    kind in seeded random order. A record whose key is None (excluded from training) forms no
    pair.
    """
    if max_pairs < 2:
        raise ValueError(f"max_pairs must be >= 2 (one pair of each kind), got {max_pairs}")
    check_records(records)
    groups: dict[tuple[int, Any], list[dict]] = {}
    for record in records:
        gid = record["group_id"]
        groups.setdefault((int(record["step"]), tuple(gid) if isinstance(gid, list) else gid),
                          []).append(record)
    same: list[MinedPair] = []
    different: list[MinedPair] = []
    seen: set[tuple[str, str]] = set()
    for (step, group_id), members in groups.items():
        keys = [key(r) for r in members]
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                a, b = members[i]["response"], members[j]["response"]
                pair_key = (min(a, b), max(a, b))
                if a == b or keys[i] is None or keys[j] is None or pair_key in seen:
                    continue
                seen.add(pair_key)
                pair = MinedPair(step, group_id, str(members[i]["prompt_id"]), a, b,
                                 keys[i] == keys[j])
                (same if pair.same_key else different).append(pair)
    rng = random.Random(seed)
    rng.shuffle(same)
    rng.shuffle(different)
    if same and different:
        n = min(len(same), len(different), max_pairs // 2)
        return same[:n] + different[:n]
    return (same or different)[:max_pairs]


def heldout_categories(categories: Sequence[str], share: float, seed: int) -> set[str]:
    """A seeded ``share`` of the distinct ``categories`` (at least one when ``share > 0``), held
    out of mining so a classifier can be measured on categories it was not trained on.

    >>> sorted(heldout_categories(["a", "b", "c", "a"], 0.0, 0))
    []
    >>> len(heldout_categories(["a", "b", "c", "d"], 0.5, 0))
    2
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"data.holdout_categories={share}: must be in [0, 1) (a share of the "
                         "run's prompt categories)")
    distinct = sorted(set(categories))
    if share == 0.0:
        return set()
    if len(distinct) < 2:
        raise ValueError(f"data.holdout_categories={share} needs prompts of at least two "
                         f"categories; the run has {distinct}")
    count = min(len(distinct) - 1, max(1, round(share * len(distinct))))
    return set(random.Random(seed).sample(distinct, count))
