"""Where darling caches converted models: ``$DARLING_CACHE`` or ``~/.cache/darling``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    """The cache directory, created on first use."""
    root = Path(os.environ.get("DARLING_CACHE", Path.home() / ".cache" / "darling"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cached_dir(name: str, build: Callable[[Path], None]) -> Path:
    """Return ``cache_root() / name``, building it with ``build(tmp_dir)`` first if absent.

    The directory appears atomically (built in a sibling temp dir, then renamed), so an
    interrupted build never leaves a half-written model behind.
    """
    target = cache_root() / name
    if (target / ".complete").exists():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_root()))
    try:
        build(tmp)
        (tmp / ".complete").write_text("ok\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target
