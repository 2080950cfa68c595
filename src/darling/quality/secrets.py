"""Keep API keys out of configs: ``quality.api_key_env`` names an environment variable.

A user who writes the key itself (``quality.api_key_env=sk-...``) would have it saved in
``config.yaml`` and in Hydra's ``.hydra/config.yaml`` and ``overrides.yaml``. ``check_api_key_env``
refuses such a value before anything else is written, and removes it from the files Hydra has
already written for the run. Train and evaluate both call it first; a config check
(``darling.train.validation``) calls ``refuse_api_key``, which refuses alike and writes nothing.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from darling.errors import ConfigError

log = logging.getLogger(__name__)

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What an environment-variable name looks like (POSIX portable names)."""
KEY_PREFIXES = ("sk-", "sk_", "pk-", "hf_", "gsk_", "xai-", "AIza")
"""Prefixes of common API keys (OpenAI, Anthropic, Hugging Face, Groq, xAI, Google)."""
MAX_ENV_NAME_LENGTH = 64
"""Longer "names" are almost surely keys; real variable names are short."""
REDACTED = "<removed: an API key is not a config value>"


def looks_like_secret(value: str) -> bool:
    """Whether ``value`` cannot be an environment-variable name or looks like an API key.

    >>> looks_like_secret("OPENAI_API_KEY"), looks_like_secret("sk-proj-abc123")
    (False, True)
    """
    return (
        not ENV_NAME.fullmatch(value)
        or value.startswith(KEY_PREFIXES)
        or len(value) > MAX_ENV_NAME_LENGTH
    )


def check_api_key_env(quality_cfg: Any, hydra_dir: str | Path | None = None) -> None:
    """Refuse a ``quality.api_key_env`` that holds a key instead of a variable name; warn when the
    named variable is not set (requests would go out without a key and fail later).

    On refusal the value is first replaced by a placeholder in every file of ``hydra_dir``
    (default: the ``.hydra`` folder of the running Hydra job, if any), so the key does not stay
    on disk; then ``ValueError`` says what to change.
    """
    value = _api_key_env(quality_cfg)
    if value is None:
        return
    if looks_like_secret(value):
        scrubbed = scrub(value, hydra_dir if hydra_dir is not None else _hydra_dir())
        raise ConfigError(_key_in_config(scrubbed))
    if not os.environ.get(value):
        log.warning(
            "quality.api_key_env=%s but the environment variable %s is not set: judge requests "
            "go out without an Authorization header (fine for a local server, rejected by a "
            "hosted API); export %s=<key> or set quality.api_key_env=null", value, value, value
        )


def refuse_api_key(quality_cfg: Any) -> None:
    """``check_api_key_env``'s refusal alone: no file is touched, nothing is logged (a config
    check; the run's shell scrubs Hydra's files first)."""
    value = _api_key_env(quality_cfg)
    if value is not None and looks_like_secret(value):
        raise ConfigError(_key_in_config([]))


def _api_key_env(quality_cfg: Any) -> str | None:
    value = quality_cfg.get("api_key_env") if hasattr(quality_cfg, "get") else None
    return None if value is None else str(value)


def _key_in_config(scrubbed: list[Path]) -> str:
    where = f" (removed from {', '.join(map(str, scrubbed))})" if scrubbed else ""
    return (
        "quality.api_key_env must be the NAME of an environment variable that holds the key "
        "(e.g. quality.api_key_env=OPENAI_API_KEY, then export OPENAI_API_KEY=...), not the "
        f"key itself: keys must never be written to configs{where}. Revoke the key if this "
        "config was shared."
    )


def refuse_literal_key(key: str, value: str) -> None:
    """Refuse ``<key>=<value>`` from the command line when ``value`` looks like an API key, before
    Hydra logs or saves the override (``darling.errors.check_command_line``)."""
    if value and value != "null" and looks_like_secret(value):
        raise ConfigError(
            f"{key} must be the NAME of an environment variable that holds the key (e.g. "
            f"{key}=OPENAI_API_KEY, then export OPENAI_API_KEY=...), not the key itself; nothing "
            "was written. Revoke the key if this command line was logged or shared."
        )


def scrub(secret: str, directory: str | Path | None) -> list[Path]:
    """Replace ``secret`` by a placeholder in every file directly under ``directory``; returns
    the files changed."""
    if directory is None or not Path(directory).is_dir():
        return []
    changed = []
    for path in sorted(Path(directory).iterdir()):
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if secret in text:
            path.write_text(text.replace(secret, REDACTED))
            changed.append(path)
    return changed


def _hydra_dir() -> Path | None:
    """``<output dir>/.hydra`` of the running Hydra job, or None outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:
        return None
    if not HydraConfig.initialized() or HydraConfig.get().output_subdir is None:
        return None
    hydra = HydraConfig.get()
    return Path(hydra.runtime.output_dir) / hydra.output_subdir
