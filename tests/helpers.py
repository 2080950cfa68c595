"""Quality functions used by the tests through `quality=callable`."""


def raising_quality(prompts, completions, rows, **kwargs):
    raise RuntimeError("judge exploded")


def length_quality(prompts, completions, rows, **kwargs):
    """A quality in [0, 1] that varies within groups even for a random model: the share of
    distinct characters among the first ten (a deterministic function of the text)."""
    return [len(set(c[:10])) / 10 for c in completions]


def flaky_judge(prompts, completions, rows, **kwargs):
    """A judge on 1..10 that fails (None) on every other row."""
    return [None if i % 2 else 1.0 + len(c) % 10 for i, c in enumerate(completions)]


def always_failing_quality(prompts, completions, rows, **kwargs):
    """A judge that cannot be reached: every row fails (None)."""
    return [None] * len(completions)


SIGTERM_AFTER_CALLS = {"at": None, "calls": 0}
"""``sigterm_quality`` sends SIGTERM to this process on call number ``at`` (1-based)."""


def sigterm_quality(prompts, completions, rows, **kwargs):
    """``length_quality`` that delivers a SIGTERM mid-step on a chosen call, as a scheduler
    preempting the job would."""
    import os
    import signal

    SIGTERM_AFTER_CALLS["calls"] += 1
    if SIGTERM_AFTER_CALLS["calls"] == SIGTERM_AFTER_CALLS["at"]:
        os.kill(os.getpid(), signal.SIGTERM)
    return length_quality(prompts, completions, rows)
