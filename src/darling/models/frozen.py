"""A policy's frozen weights (a LoRA policy's base): left out of training checkpoints, rebuilt
from the model spec on resume, and checked against the fingerprint saved with the checkpoint."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from darling.errors import ConfigError


@torch.no_grad()
def weights_fingerprint(tensors: Iterable[torch.Tensor]) -> list[float]:
    """``[n, sum x, sum x^2]`` over every element of ``tensors``, accumulated in float64.

    Not a hash: it is meant to catch a different checkpoint or revision of a model, not tampering.
    """
    n, total, squares = 0, 0.0, 0.0
    for t in tensors:
        x = t.detach().double()
        n += x.numel()
        total += float(x.sum())
        squares += float((x * x).sum())
    return [float(n), total, squares]


def fingerprints_match(a: Sequence[float], b: Sequence[float], rel_tol: float = 1e-6) -> bool:
    """Equal element counts and sums within ``rel_tol`` (reduction order differs across devices).

    >>> fingerprints_match([2.0, 1.0, 1.0], [2.0, 1.0 + 1e-9, 1.0])
    True
    """
    return a[0] == b[0] and all(
        math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-9) for x, y in zip(a[1:], b[1:], strict=True)
    )


def frozen_state(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state_dict`` entries of the frozen parameters (a tied weight under each of its names)."""
    return {
        name: p.detach()
        for name, p in policy.named_parameters(remove_duplicate=False)
        if not p.requires_grad
    }


def check_frozen(saved: Sequence[float] | None, current: Sequence[float]) -> None:
    """Raise if the frozen weights' fingerprint ``current`` is not the one a checkpoint saved
    (``None``: a checkpoint from before fingerprints, nothing to check)."""
    if saved is not None and not fingerprints_match(saved, current):
        raise ConfigError(
            "the checkpoint was trained on other frozen (base) weights than this config loads "
            f"(fingerprint {list(saved)} vs {list(current)}); use the model config (model.*, "
            "seed) the run was started with"
        )


def restore_policy(policy: torch.nn.Module, checkpoint: dict) -> None:
    """Load a training checkpoint's policy weights into ``policy``, which was built from the run's
    model spec and supplies the frozen weights the checkpoint leaves out."""
    state = {
        k.removeprefix("policy."): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("policy.")
    }
    check_frozen(checkpoint.get("darling", {}).get("frozen_fingerprint"),
                 weights_fingerprint(frozen_state(policy).values()))
    for key, value in frozen_state(policy).items():
        state.setdefault(key, value)
    policy.load_state_dict(state)
