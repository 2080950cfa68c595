"""The policy as training uses it: PPO's on-policy ratio must be 1, so dropout is off."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from darling.models.loading import load_policy


def disable_dropout(model: torch.nn.Module) -> int:
    """Set every dropout probability of ``model`` to 0; returns how many were positive.

    PPO needs ``log pi_old`` and ``log pi_theta`` from the same function: with dropout each
    forward draws its own mask, so the ratio of an unchanged policy is not 1 and ``approx_kl`` and
    the clip fraction measure noise. Covers ``nn.Dropout`` modules (peft's ``lora_dropout``
    included), float ``*dropout*`` attributes that attention modules copy from the config at
    build time (Llama's ``attention_dropout``) and the config fields themselves.
    """
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout) and module.p > 0:
            module.p, changed = 0.0, changed + 1
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float) and value > 0:
                setattr(module, name, 0.0)
                changed += 1
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}
    for config in configs.values():
        for name, value in list(vars(config).items()):
            if "dropout" in name and isinstance(value, float) and value > 0:
                setattr(config, name, 0.0)
                changed += 1
    return changed


def load_policy_weights(spec: DictConfig, seed: int) -> torch.nn.Module:
    """The policy with its weights (``load_policy``'s model, dropout off, as training uses it)."""
    policy = load_policy(spec, seed=seed)[0]
    disable_dropout(policy)
    return policy
