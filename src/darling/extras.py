"""Optional dependencies: a clear error naming the extra to install when a config needs one."""

from __future__ import annotations

import importlib.util

from darling.errors import MissingExtraError

EXTRAS = {
    "vllm": "gpu",
    "bitsandbytes": "gpu",
    "wandb": "wandb",
    "wandb_workspaces": "wandb",
    "pandas": "parquet",
    "pyarrow": "parquet",
    "datasets": "hub",
    "hydra_plugins.hydra_submitit_launcher": "slurm",
}
"""importable module -> the ``darling[<extra>]`` that installs it (pyproject.toml)."""

INSTALL_HINTS = {
    "vllm": "pip install 'darling[gpu]' on a GPU machine, or bash scripts/install_cpu.sh --vllm "
            "for vLLM's CPU build",
}
"""Modules whose install is more than one extra."""


def require_module(module: str, why: str = "this config") -> None:
    """Raise an ImportError naming the extra to install when ``module`` is missing."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package of a dotted name is missing
        found = False
    if not found:
        hint = INSTALL_HINTS.get(module, f"pip install 'darling[{EXTRAS.get(module, module)}]'")
        raise MissingExtraError(f"{why} needs {module}, which is not installed: {hint}")
