"""Any Python callable as a quality function, named by dotted path."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from darling.errors import ConfigError


def callable_quality(path: str) -> Callable:
    """Import ``package.module:function`` (or ``package.module.function``) and return it.

    The callable must accept ``(prompts, completions, rows, **kwargs)`` and return one float or
    None per completion.
    """
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"quality.path={path!r}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"quality.path={path!r}: cannot import {module_name!r}: {err}") from err
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"quality.path={path!r}: {module_name} has no callable {attr!r}")
    return fn
