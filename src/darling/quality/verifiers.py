"""Verifiable quality: answer-set membership and math-verify correctness (1.0 or 0.0)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from darling.tasks.answers import MathVerifyError, answer_in_set, math_equivalent
from darling.tasks.prompts import row_aliases, row_field


class AnswerSetQuality:
    """1.0 when the normalised final answer is one of the row's accepted ``answers``, else 0.0.

    >>> AnswerSetQuality()(["Name a primary color."], ["Red."], [{"answers": ["red", "blue"]}])
    [1.0]
    """

    __name__ = "answer_set"

    def __call__(
        self, prompts: Sequence[str], completions: Sequence[str], rows: Sequence[Any], **kwargs
    ) -> list[float | None]:
        return [
            float(answer_in_set(text, row_field(row, "answers"), row_aliases(row))[0])
            for text, row in zip(completions, rows, strict=True)
        ]


class MathVerifyQuality:
    """1.0 when ``math_verify`` finds the completion equivalent to the row's ``ground_truth``
    (spec section 3: mathematical equivalence, not string equality). A verifier error or
    timeout gives None for that row (reported and excluded), never 0."""

    __name__ = "math_verify"

    def __call__(
        self, prompts: Sequence[str], completions: Sequence[str], rows: Sequence[Any], **kwargs
    ) -> list[float | None]:
        return [_verify(text, row_field(row, "ground_truth")) for text, row in zip(
            completions, rows, strict=True
        )]


def verifier_correctness(completions: Sequence[str], rows: Sequence[Any]) -> list[float | None]:
    """Correctness of each completion by its prompt's own verifier, whatever the quality reward:
    ``answer_in_set`` for rows with ``answers``, math-verify for rows with ``ground_truth``. One
    value per completion: 1.0 / 0.0, or None where math-verify failed (never read as wrong).
    A row with neither field is an error (open prompts have no correctness).

    >>> verifier_correctness(["Red.", "green"], [{"answers": ["red"]}] * 2)
    [1.0, 0.0]
    """
    out: list[float | None] = []
    for text, row in zip(completions, rows, strict=True):
        kind = row.get("kind") if isinstance(row, dict) else getattr(row, "kind", None)
        has_answers = kind == "answers" or (kind is None and _has(row, "answers"))
        if has_answers:
            out.append(float(answer_in_set(text, row_field(row, "answers"), row_aliases(row))[0]))
        else:
            out.append(_verify(text, row_field(row, "ground_truth")))
    return out


def _has(row: Any, name: str) -> bool:
    value = row.get(name) if isinstance(row, dict) else getattr(row, name, None)
    return value is not None


def _verify(text: str, ground_truth: str) -> float | None:
    try:
        return float(math_equivalent(text, ground_truth))
    except MathVerifyError:
        return None
