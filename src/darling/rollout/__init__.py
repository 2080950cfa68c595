"""Rollout engines: one interface (``RolloutEngine``), Hugging Face ``generate`` and vLLM."""

from darling.rollout.base import RolloutEngine, Rollouts, SamplingSpec

__all__ = ["RolloutEngine", "Rollouts", "SamplingSpec"]
