"""Quality rewards (the ``quality/`` config group).

Every quality function is a picklable callable with a stable ``__name__`` and the signature
``(prompts, completions, rows, **kwargs) -> list[float | None]``: one score per completion,
``None`` for a row it could not score (a judge timeout, an unparsable verdict). ``None`` is
reported and the row is excluded; it never becomes 0.
"""

from darling.quality.base import QualityFailure, score_quality
from darling.quality.binned import BinnedQuality
from darling.quality.judge import JudgeQuality
from darling.quality.loader import callable_quality
from darling.quality.reward_model import RewardModelQuality
from darling.quality.verifiers import AnswerSetQuality, MathVerifyQuality

__all__ = [
    "AnswerSetQuality",
    "BinnedQuality",
    "JudgeQuality",
    "MathVerifyQuality",
    "QualityFailure",
    "RewardModelQuality",
    "callable_quality",
    "score_quality",
]
