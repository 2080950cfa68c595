"""Prompt files and correctness checks for verifiable prompts (spec section 3)."""

from darling.tasks.answers import (
    MathVerifyError,
    answer_in_set,
    extract_final_answer,
    math_equivalent,
    normalise_answer,
)
from darling.tasks.prompts import PromptRow, builtin_path, load_prompts

__all__ = [
    "MathVerifyError",
    "PromptRow",
    "answer_in_set",
    "builtin_path",
    "extract_final_answer",
    "load_prompts",
    "math_equivalent",
    "normalise_answer",
]
