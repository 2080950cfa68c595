"""Quality functions: judge retries and failures (local HTTP server), checks on returned scores."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from darling.quality import (
    AnswerSetQuality,
    JudgeQuality,
    MathVerifyQuality,
    QualityFailure,
    callable_quality,
    score_quality,
)
from darling.quality.judge import parse_score


class _Judge(BaseHTTPRequestHandler):
    """Replies by the completion text: 'flaky' fails once then scores 7, 'garbage' never holds a
    score, 'slow' answers after the client's timeout, anything else scores 9."""

    calls: dict[str, int] = {}

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        content = body["messages"][0]["content"]
        kind = next((k for k in ("flaky", "garbage", "slow") if k in content), "ok")
        self.calls[kind] = self.calls.get(kind, 0) + 1
        if kind == "flaky" and self.calls[kind] == 1:
            self.send_response(500)
            self.end_headers()
            return
        if kind == "slow":
            threading.Event().wait(0.5)
        reply = {"ok": "9", "flaky": "Score: 7", "garbage": "I cannot rate this.", "slow": "5"}
        payload = json.dumps({"choices": [{"message": {"content": reply[kind]}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    server = HTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Judge.calls = {}
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_judge_retries_then_reports_failures(judge_url, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "secret")
    judge = JudgeQuality(judge_url, "m", api_key_env="TEST_JUDGE_KEY", timeout_s=0.2,
                         retries=2, backoff_s=0.01, max_workers=1)
    scores = judge(["p"] * 4, ["fine", "flaky", "garbage", "slow"], [None] * 4)
    assert scores == [9.0, 7.0, None, None]
    assert _Judge.calls["garbage"] == 2  # bounded retries
    assert "secret" not in repr(vars(judge))  # the key is read at call time, never stored


def test_score_quality_marks_failures_as_nan_and_counts_them():
    def half(prompts, completions, rows):
        return [None, 1.0]

    scores, metrics = score_quality(half, ["p", "p"], ["a", "b"], [None, None])
    assert np.isnan(scores[0]) and scores[1] == 1.0 and metrics["failed"] == 1.0


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda p, c, r: [float("nan")] * len(c), "return None"),
        (lambda p, c, r: [1.0], "returned 1 scores for 2"),
        (lambda p, c, r: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_score_quality_rejects_bad_output(fn, message):
    with pytest.raises(QualityFailure, match=message):
        score_quality(fn, ["p", "p"], ["a", "b"], [None, None])


def test_answer_set_and_math_verify():
    rows = [{"answers": ["red", "blue"]}, {"answers": ["red", "blue"]}]
    assert AnswerSetQuality()(["q", "q"], ["Blue.", "Green"], rows) == [1.0, 0.0]
    math = MathVerifyQuality()(["q", "q"], ["The answer is $\\frac{1}{2}$", "3"],
                               [{"ground_truth": "0.5"}, {"ground_truth": "4"}])
    assert math == [1.0, 0.0]


def test_callable_quality_errors():
    assert callable_quality("tests.helpers:length_quality").__name__ == "length_quality"
    with pytest.raises(ValueError, match="cannot import"):
        callable_quality("no_such_module:fn")
    with pytest.raises(ValueError, match="no callable"):
        callable_quality("tests.helpers:nothing_here")


def test_parse_score():
    assert parse_score("8") == 8.0 and parse_score("10/10") == 10.0 and parse_score("0") is None
