"""Policy models: the offline CPU default (SmolLM2-135M-Instruct), a tiny test model, hub models."""

from darling.models.loading import ModelSpec, load_policy

__all__ = ["ModelSpec", "load_policy"]
