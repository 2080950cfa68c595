"""Silence what a user cannot act on, by name; everything else still shows.

Each entry is a library's message about its own internals (a deprecation inside Lightning, a
design choice of this project that Lightning warns about) or a banner. No blanket ignore: a
warning not listed here is printed as before.
"""

from __future__ import annotations

import logging
import re
import warnings

KNOWN_WARNINGS = (
    # Lightning 2.6 calls torch's deprecated pytree API itself
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # transformers' own deprecation of the cache format it is handed by its own generate()
    r".*past_key_values.*deprecat",
    # darling checkpoints after the PPO update on purpose (the state a resume continues from)
    r"Using ModelCheckpoint with manual optimization",
    # a resume finds its own checkpoints/ and rebuilds its callbacks: both expected
    r"Checkpoint directory .* exists and is not empty",
    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint",
)
"""Regexes (matched at the start of a warning's message) of warnings darling hides."""

KNOWN_LOG_LINES = (
    r"GPU available: ", r"TPU available: ", r"HPU available: ", r"💡 Tip: ",
    r"`Trainer.fit` stopped: `max_steps=\d+` reached",
    r"`use_cache=True` is incompatible with gradient checkpointing",
)
"""Lightning's and transformers' INFO/WARNING banners about nothing the user chose."""

LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
           "transformers")


class _DropKnown(logging.Filter):
    def __init__(self, patterns: tuple[str, ...]):
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(record.getMessage())


_FILTER = _DropKnown(KNOWN_LOG_LINES)


def silence_known_noise() -> None:
    """Install the filters (idempotent): ``KNOWN_WARNINGS`` by message, ``KNOWN_LOG_LINES`` on
    Lightning's and transformers' loggers and their handlers, and transformers' weight-loading
    progress bar."""
    for pattern in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if _FILTER not in target.filters:
                target.addFilter(_FILTER)
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()
    for handler in hf_logging.get_logger().handlers:  # the library's own handler
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
