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


def _verify(text: str, ground_truth: str) -> float | None:
    try:
        return float(math_equivalent(text, ground_truth))
    except MathVerifyError:
        return None
