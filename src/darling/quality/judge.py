"""Quality from an LLM judge behind an OpenAI-compatible ``/chat/completions`` endpoint.

The API key is read from the environment variable named by ``api_key_env`` at call time; it is
never stored in the config, logged or written to disk, and never sent to another host: a
redirect to a different scheme, host or port drops the ``Authorization`` header. A call that
still fails after ``retries`` attempts, or whose reply holds no score, yields ``None`` for that
row (reported and excluded), never a score of 0. The first failure of each kind (an HTTP
status, a connection error, a timeout, an unusable reply) is logged with its cause, and every
failed attempt is counted (``failure_summary``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

from darling.errors import ConfigError

DEFAULT_TEMPLATE = (
    "Rate the quality of the assistant's response to the user's request on a scale from 1 "
    "(useless) to 10 (excellent). Consider helpfulness, correctness and writing.\n\n"
    "[User request]\n{prompt}\n\n[Assistant response]\n{completion}\n\n"
    "Reply with a single integer from 1 to 10 and nothing else."
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCORE = re.compile(r"\b(10|[1-9])\b")


def parse_score(reply: str, low: int = 1, high: int = 10) -> float | None:
    """The first integer in ``[low, high]`` in the judge's reply, or None.

    >>> parse_score("Score: 7/10"), parse_score("no idea")
    (7.0, None)
    """
    for match in _SCORE.finditer(reply):
        value = int(match.group(1))
        if low <= value <= high:
            return float(value)
    return None


class _KeepKeyOnOrigin(urllib.request.HTTPRedirectHandler):
    """Follow redirects as urllib does, but drop ``Authorization`` when the redirect leaves the
    origin (scheme, host, port) of the request: the key is for the configured judge only."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, parts.hostname, parts.port or default_port


_OPENER = urllib.request.build_opener(_KeepKeyOnOrigin)


class JudgeQuality:
    """Score each completion 1..10 with a judge model over HTTP (OpenAI chat-completions API)."""

    __name__ = "judge"

    def __init__(
        self,
        base_url: str,
        model: str,
        template: str = DEFAULT_TEMPLATE,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 2.0,
        max_workers: int = 8,
        max_tokens: int = 8,
    ):
        if "{prompt}" not in template or "{completion}" not in template:
            raise ConfigError("quality.template must contain {prompt} and {completion}")
        self.base_url, self.model, self.template = base_url.rstrip("/"), model, template
        self.api_key_env, self.timeout_s, self.retries = api_key_env, timeout_s, retries
        self.backoff_s, self.max_workers, self.max_tokens = backoff_s, max_workers, max_tokens
        self.failures: Counter[str] = Counter()
        """Failed attempts by kind (``HTTP 307``, ``connection error``...), over the run."""
        self._lock = threading.Lock()

    def _failed(self, kind: str, detail: str) -> None:
        """Count a failed attempt; log the first one of each kind (the rest are counted only)."""
        with self._lock:
            self.failures[kind] += 1
            first = self.failures[kind] == 1
        if first:
            log.warning("judge %s: %s (%s); further failures of this kind are counted, not "
                        "logged", self.base_url, kind, detail)

    def __getstate__(self) -> dict[str, Any]:  # picklable: the lock is rebuilt
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def failure_summary(self) -> str:
        """``"48 x HTTP 307, 2 x connection error"``: the failed attempts so far ("" if none)."""
        with self._lock:
            return ", ".join(f"{n} x {kind}" for kind, n in self.failures.most_common())

    def __call__(
        self, prompts: Sequence[str], completions: Sequence[str], rows: Sequence[Any], **kwargs
    ) -> list[float | None]:
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return list(pool.map(self._score_one, prompts, completions))

    def _score_one(self, prompt: str, completion: str) -> float | None:
        return self.ask(self.template.format(prompt=prompt, completion=completion), parse_score)

    def ask(self, content: str, parse: Callable[[str], T | None]) -> T | None:
        """Send ``content`` as one user message; ``parse(reply)`` of the first reply it accepts
        (not None), retrying failed calls and unparseable replies ``retries`` times in all with
        exponential backoff; None when every attempt failed."""
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": content}],
                "temperature": 0.0,
                "max_tokens": self.max_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        for attempt in range(self.retries):
            try:
                request = urllib.request.Request(
                    f"{self.base_url}/chat/completions", data=body, headers=headers
                )
                with _OPENER.open(request, timeout=self.timeout_s) as response:
                    reply = json.loads(response.read())["choices"][0]["message"]["content"]
                parsed = parse(reply or "")
                if parsed is not None:
                    return parsed
                self._failed("unusable reply", f"no score in {(reply or '')[:80]!r}")
            except urllib.error.HTTPError as err:
                location = err.headers.get("Location") if err.headers else None
                self._failed(f"HTTP {err.code}", (
                    f"redirect to {location} not followed: set quality.base_url to the final "
                    "address" if location and 300 <= err.code < 400 else str(err.reason)))
            except urllib.error.URLError as err:
                self._failed("connection error", str(err.reason))
            except (TimeoutError, OSError) as err:
                self._failed(type(err).__name__, str(err) or f"after {self.timeout_s} s")
            except (KeyError, IndexError, TypeError, json.JSONDecodeError) as err:
                self._failed("malformed response", f"{type(err).__name__}: {err}")
            if attempt + 1 < self.retries:
                time.sleep(self.backoff_s * 2**attempt)
        return None
