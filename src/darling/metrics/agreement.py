"""How a partition's classes agree with known answers: false merges and false splits.

Pure: ``(answer, class)`` pairs in, shares out. Used by the training-signal table
(``darling.eval.training_signal``) and by ``train_classifier.py``'s held-out categories.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence


def class_agreement(groups: Iterable[Sequence[tuple[Hashable, Hashable]]]) -> dict[str, float]:
    """Over the within-group pairs ``i < j`` of each group's ``(answer_i, class_i)`` members:

    - ``false_merge = #{answer_i != answer_j, class_i == class_j} / #{answer_i != answer_j}``;
    - ``false_split = #{answer_i == answer_j, class_i != class_j} / #{answer_i == answer_j}``;
    - ``same_pairs``, ``different_pairs``: the two denominators.

    A share with no pairs is NaN. Pairs never cross groups.

    >>> class_agreement([[("a", 0), ("a", 1), ("b", 1)]])["false_split"]
    1.0
    """
    merged = different = split = same = 0
    for members in groups:
        for i, (answer_i, class_i) in enumerate(members):
            for answer_j, class_j in members[i + 1:]:
                if answer_i == answer_j:
                    same += 1
                    split += class_i != class_j
                else:
                    different += 1
                    merged += class_i == class_j
    return {
        "false_merge": merged / different if different else float("nan"),
        "false_split": split / same if same else float("nan"),
        "same_pairs": float(same),
        "different_pairs": float(different),
    }
