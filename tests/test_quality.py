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
from tests.chat_server import chat_server

JUDGE_CALLS: dict[str, int] = {}
"""Requests per kind of completion text seen by the ``judge_url`` stand-in."""


def _judge_reply(content: str) -> str | None:
    """By the completion text: 'flaky' fails once then scores 7, 'garbage' never holds a score,
    'slow' answers after the client's timeout, anything else scores 9."""
    kind = next((k for k in ("flaky", "garbage", "slow") if k in content), "ok")
    JUDGE_CALLS[kind] = JUDGE_CALLS.get(kind, 0) + 1
    if kind == "flaky" and JUDGE_CALLS[kind] == 1:
        return None
    if kind == "slow":
        threading.Event().wait(0.5)
    return {"ok": "9", "flaky": "Score: 7", "garbage": "I cannot rate this.", "slow": "5"}[kind]


@pytest.fixture
def judge_url():
    JUDGE_CALLS.clear()
    with chat_server(_judge_reply) as url:
        yield url


def test_judge_retries_then_reports_failures(judge_url, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "secret")
    judge = JudgeQuality(judge_url, "m", api_key_env="TEST_JUDGE_KEY", timeout_s=0.2,
                         retries=2, backoff_s=0.01, max_workers=1)
    scores = judge(["p"] * 4, ["fine", "flaky", "garbage", "slow"], [None] * 4)
    assert scores == [9.0, 7.0, None, None]
    assert JUDGE_CALLS["garbage"] == 2  # bounded retries
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


class _Recorder(BaseHTTPRequestHandler):
    """The 'other host': records the headers of every request it gets, answers a score."""

    seen: list[dict[str, str]] = []

    def _answer(self):
        self.seen.append(dict(self.headers))
        payload = json.dumps({"choices": [{"message": {"content": "6"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer  # noqa: N815 - http.server's names

    def log_message(self, *args):
        pass


def _serve(handler):
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("code", [302, 307])
def test_judge_key_is_not_sent_to_another_host_on_redirect(monkeypatch, code):
    other = _serve(_Recorder)
    target = f"http://127.0.0.1:{other.server_port}/v1/chat/completions"

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(code)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    judge_server = _serve(Redirect)
    _Recorder.seen = []
    monkeypatch.setenv("TEST_JUDGE_KEY", "secret-key")
    judge = JudgeQuality(f"http://127.0.0.1:{judge_server.server_port}/v1", "m",
                         api_key_env="TEST_JUDGE_KEY", timeout_s=2, retries=1, max_workers=1)
    judge(["p"], ["c"], [None])
    assert _Recorder.seen or code == 307  # urllib follows 302 for POST; 307 POST is not followed
    for headers in _Recorder.seen:
        assert "secret-key" not in json.dumps(headers)
        assert "Authorization" not in headers
    other.shutdown()
    judge_server.shutdown()


def test_redirect_origin_is_scheme_host_and_port():
    from darling.quality.judge import _origin

    assert _origin("http://a:80/x") == _origin("http://a/y") != _origin("http://a:81/x")
    assert _origin("https://a/x") != _origin("http://a/x")


def test_api_key_in_place_of_its_variable_name_is_refused_and_scrubbed(tmp_path):
    from darling.quality.secrets import check_api_key_env, looks_like_secret

    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "overrides.yaml").write_text("- quality.api_key_env=sk-proj-abc123\n")
    (hydra / "config.yaml").write_text("quality:\n  api_key_env: sk-proj-abc123\n")
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        check_api_key_env({"api_key_env": "sk-proj-abc123"}, hydra)
    for path in hydra.iterdir():
        assert "sk-proj-abc123" not in path.read_text()
    assert not looks_like_secret("OPENAI_API_KEY") and not looks_like_secret("_K2")
    for value in ("sk-abc", "abc def", "a" * 65, "hf_abcdef", "1ABC", "key=value"):
        assert looks_like_secret(value), value
    check_api_key_env({"api_key_env": None}, hydra)
    check_api_key_env({"api_key_env": "SOME_UNSET_VARIABLE_FOR_TEST"}, hydra)  # a warning only


def test_reward_model_offloaded_between_calls_scores_like_the_replicated_one(tmp_path):
    """placement=offload keeps the model in host memory between calls (on the CPU the move is a
    no-op; this checks the path and that scores are the same)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from darling.models.smollm2 import smollm2_path
    from darling.quality import RewardModelQuality

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, num_labels=1,
        pad_token_id=tokenizer.pad_token_id))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    args = (["Name a colour."] * 2, ["Blue.", "A shade of green."], [None, None])
    replicated = RewardModelQuality(str(tmp_path), dtype="float32", device="cpu")
    offloaded = RewardModelQuality(str(tmp_path), dtype="float32", device="cpu",
                                   placement="offload")
    assert offloaded(*args) == replicated(*args)
    assert next(offloaded.model.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="quality.placement='sharded'"):
        RewardModelQuality(str(tmp_path), placement="sharded")
