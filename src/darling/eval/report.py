"""All evaluation metrics of one set of generations, from plain arrays (pure; spec 3 and 4).

``evaluation_report`` takes all N generations with their group (prompt) ids, quality scores (NaN
where the scorer failed), class labels from the partition, optional correctness (1/0, NaN where
the verifier failed) and optional embeddings, and returns a flat summary plus one row per prompt.

Missing values are passed in, never dropped beforehand: a group scored over k-1 generations would
get shifted patience weights and smaller pass@k sample counts. Each metric handles them itself and
the summary counts them (``quality_missing``, ``utility_groups_missing``,
``correct_missing`` / ``correct_groups_missing``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from darling.groups import check_lengths, group_indices
from darling.metrics import (
    correct_distinct_k,
    default_ks,
    distinct_k,
    distinct_n,
    mean_pairwise_cosine_distance,
    ngram_novelty_scores,
    pass_at_k_curve,
    utility_k,
    vendi_score,
)


def evaluation_report(
    texts: Sequence[str],
    group_ids: Sequence[Hashable],
    quality: np.ndarray,
    labels: np.ndarray,
    correct: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    ks: Sequence[int] | None = None,
    utility_scores: bool = False,
) -> tuple[dict[str, float], list[dict[str, float | str]]]:
    """Summary metrics and per-prompt rows.

    - ``quality_mean`` over scored generations; ``quality_missing`` counts failed ones (excluded
      from that mean only: they still count in distinct@k and the lexical metrics);
    - ``pass@k`` for each k (unbiased estimator), when ``correct`` is given; ``ks`` default to
      ``default_ks`` of the smallest group. A group with a missing correctness value (NaN) is
      left out of pass@k and correct_distinct@k as a whole and counted in
      ``correct_groups_missing`` (``correct_missing`` counts the values); if every group is out,
      pass@k is NaN;
    - ``distinct@k`` (classes among the k generations), ``correct_distinct@k`` (classes holding a
      correct generation);
    - ``utility@k`` (NoveltyBench, patience 0.8) when ``utility_scores`` (quality on 1..10); a
      group with a missing score is left out and counted in ``utility_groups_missing``;
    - ``distinct_1..4``, ``ngram_novelty`` (spec's 4-gram score), ``embedding_distance`` and
      ``vendi`` (when embeddings are given), ``response_words_mean``.
    """
    check_lengths(len(texts), group_ids)
    quality = np.asarray(quality, dtype=np.float64)
    labels = np.asarray(labels)
    scored = ~np.isnan(quality)
    groups = group_indices(group_ids)
    summary: dict[str, float] = {
        "generations": float(len(texts)),
        "prompts": float(len(groups)),
        "quality_mean": float(quality[scored].mean()) if scored.any() else float("nan"),
        "quality_missing": float((~scored).sum()),
        "response_words_mean": float(np.mean([len(t.split()) for t in texts])),
    }
    per_group_distinct, m = distinct_k(labels, group_ids)
    summary["distinct@k"] = m["distinct_k_mean"]
    if correct is not None:
        correct = np.asarray(correct, dtype=np.float64)
        check_lengths(len(correct), group_ids, "correctness values")
        complete = [gid for gid, members in groups.items() if not np.isnan(correct[members]).any()]
        summary["correct_missing"] = float(np.isnan(correct).sum())
        summary["correct_groups_missing"] = float(len(groups) - len(complete))
        ks = list(ks) if ks else default_ks(min(len(m) for m in groups.values()))
        keep = np.concatenate([groups[gid] for gid in complete]) if complete else np.empty(0, int)
        keep.sort()
        kept_ids = [group_ids[i] for i in keep]
        is_correct = correct[keep] >= 0.5
        curve = pass_at_k_curve(is_correct, kept_ids, ks) if complete else {}
        for k in ks:
            summary[f"pass@{k}"] = curve.get(k, float("nan"))
        per_group_correct_distinct, m = correct_distinct_k(labels[keep], is_correct, kept_ids)
        summary["correct_distinct@k"] = m["correct_distinct_k_mean"]
    if utility_scores:
        _, m = utility_k(labels, [None if np.isnan(q) else q for q in quality], group_ids)
        summary["utility@k"] = m["utility_k_mean"]
        summary["utility_groups_missing"] = m["groups_missing_score"]
    for n in (1, 2, 3, 4):
        summary[f"distinct_{n}"] = distinct_n(texts, group_ids, n)[1]["distinct_n_mean"]
    summary["ngram_novelty"] = float(np.mean(ngram_novelty_scores(list(texts), group_ids)))
    if embeddings is not None:
        summary["embedding_distance"] = mean_pairwise_cosine_distance(embeddings, group_ids)[1][
            "mean_pairwise_cosine_distance"
        ]
        summary["vendi"] = vendi_score(embeddings, group_ids)[1]["vendi_mean"]

    rows: list[dict[str, float | str]] = []
    for gid, members in groups.items():
        q = quality[members]
        row: dict[str, float | str] = {
            "group_id": str(gid),
            "samples": float(len(members)),
            "quality_mean": float(np.nanmean(q)) if (~np.isnan(q)).any() else float("nan"),
            "distinct": per_group_distinct[gid],
        }
        if correct is not None:
            row["correct"] = float(correct[members].sum())  # NaN when a value is missing
            row["correct_distinct"] = float(per_group_correct_distinct.get(gid, float("nan")))
        rows.append(row)
    return summary, rows
