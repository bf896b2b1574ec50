"""The OpenAI-compatible engine: request bodies, chat and completions endpoints, per-sample seeds, retries
(backoff, its cap, Retry-After in seconds and as an HTTP date, connection errors), requests that are not
retried, the on-disk cache. Through `httpx.MockTransport` (no socket, no waiting: the retry waits are recorded,
not slept), and once against a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import email.utils
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from dlcot.engines import openai as openai_engine
from dlcot.engines.openai import MAX_WAIT_S, EngineRequestError, OpenAIEngine, retry_after_s

URL = "http://teacher.invalid/v1"


def answer(body: dict) -> dict:
    """What the fake server says: `echo <seed>: <prompt> \\boxed{4} STOP tail`."""
    prompt = body["messages"][0]["content"] if "messages" in body else body["prompt"]
    text = f"echo {body['seed']}: {prompt} \\boxed{{4}} STOP tail"
    choice = {"message": {"role": "assistant", "content": text}} if "messages" in body else {"text": text}
    choice["finish_reason"] = "length" if body["max_tokens"] < 5 else "stop"
    return {"choices": [choice]}


class Server:
    """A MockTransport handler: answers every request, except that the first ones get `failures` (each an
    httpx.Response, or an exception to raise as the transport would)."""

    def __init__(self, *failures):
        self.failures = list(failures)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return httpx.Response(200, json=answer(json.loads(request.content)))

    def bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests]


class CharTokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(range(len(text)))}


@pytest.fixture()
def waits(monkeypatch) -> list[float]:
    """The waits before each retry, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(openai_engine, "_sleep", slept.append)
    return slept


def make(server=None, url=URL, **kw) -> OpenAIEngine:
    kw.setdefault("tokenizer", CharTokenizer())
    if server is not None:
        kw["transport"] = httpx.MockTransport(server)
    return OpenAIEngine(url, "tiny", **kw)


def test_chat_requests_carry_sampling_settings_and_per_sample_seeds(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server = Server()
    out = make(server, concurrency=4).generate(["2+2?", "3+1?"], n=2, max_new_tokens=64, temperature=0.7,
                                               top_p=0.9, stop=["STOP"], seed=1, keys=["a", "b"])
    assert len(server.requests) == 4 and {r.url.path for r in server.requests} == {"/v1/chat/completions"}
    body = server.bodies()[0]
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"], body["stop"]) == (
        "tiny", 64, 0.7, 0.9, ["STOP"])
    assert {r.headers["Authorization"] for r in server.requests} == {"Bearer sk-test"}
    assert len({b["seed"] for b in server.bodies()}) == 4  # every sample its own seed
    first = out[0][0]
    assert first.text.startswith("echo ") and first.text.endswith("2+2? \\boxed{4} ")  # cut at the stop string
    assert first.n_tokens == len(first.text) and first.finish_reason == "stop"
    again = make(Server()).generate(["2+2?"], n=2, max_new_tokens=64, temperature=0.7, top_p=0.9, stop=["STOP"],
                                    seed=1, keys=["a"])
    assert [c.text for c in again[0]] == [c.text for c in out[0]]  # seeds depend on (seed, key, sample) only


def test_completions_endpoint_and_length_finish():
    server = Server()
    ((c,),) = make(server, endpoint="completions").generate(["<|im_start|>user\nhi"], max_new_tokens=3)
    assert server.requests[0].url.path == "/v1/completions" and server.bodies()[0]["prompt"].endswith("hi")
    assert "Authorization" not in server.requests[0].headers and c.finish_reason == "length"


def test_server_errors_and_connection_errors_are_retried_with_exponential_backoff(waits):
    server = Server(httpx.Response(503, text="busy"), httpx.ConnectError("connection refused"),
                    httpx.Response(502), httpx.ReadTimeout("slow"))
    eng = make(server, max_retries=4, backoff_s=1.5)
    ((c,),) = eng.generate(["q"], max_new_tokens=10)
    assert c.text.startswith("echo") and len(server.requests) == 5 and eng.n_requests == 5
    assert waits == [1.5, 3.0, 6.0, 12.0]


def test_the_backoff_is_capped(waits):
    server = Server(*[httpx.Response(500)] * 9)
    make(server, max_retries=9, backoff_s=1.0).generate(["q"], max_new_tokens=10)
    assert waits == [1, 2, 4, 8, 16, 32, MAX_WAIT_S, MAX_WAIT_S, MAX_WAIT_S] and MAX_WAIT_S < 64


def test_retry_after_is_honoured_in_seconds_and_as_an_http_date(waits):
    soon = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    server = Server(httpx.Response(429, headers={"Retry-After": "7"}),
                    httpx.Response(503, headers={"Retry-After": soon}),
                    httpx.Response(429, headers={"Retry-After": "3600"}),  # more than the cap: the cap
                    httpx.Response(429, headers={"Retry-After": "soon-ish"}))  # unreadable: the backoff
    make(server, max_retries=4, backoff_s=0.5).generate(["q"], max_new_tokens=10)
    assert waits[0] == 7.0 and 25 < waits[1] <= 30 and waits[2] == MAX_WAIT_S and waits[3] == 0.5 * 2 ** 3
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert retry_after_s("Thu, 01 Jan 2026 00:01:30 GMT", now) == 90.0
    assert retry_after_s("Wed, 31 Dec 2025 23:00:00 GMT", now) == 0.0  # in the past: at once
    assert retry_after_s(None) is None and retry_after_s("-3") == 0.0


def test_gives_up_after_the_retries_with_the_last_error(waits):
    server = Server(*[httpx.Response(503, text='{"error": "busy"}')] * 10)
    with pytest.raises(EngineRequestError, match=r'HTTP 503: \{"error": "busy"\} after 3 tries'):
        make(server, max_retries=2).generate(["q"], max_new_tokens=10)
    assert len(server.requests) == 3 and len(waits) == 2
    with pytest.raises(EngineRequestError, match="ConnectError: no route after 2 tries"):
        make(Server(*[httpx.ConnectError("no route")] * 5), max_retries=1).generate(["q"], max_new_tokens=10)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_refused_request_is_not_retried_and_says_why(status, waits):
    server = Server(httpx.Response(status, json={"error": {"message": "max_tokens is too large: 99999"}}))
    eng = make(server, max_retries=5)
    with pytest.raises(EngineRequestError) as err:
        eng.generate(["q"], max_new_tokens=10)
    message = str(err.value)
    assert f"HTTP {status}, not retried" in message and "max_tokens is too large: 99999" in message
    assert "engine.base_url" in message and "$OPENAI_API_KEY" in message
    assert len(server.requests) == 1 and eng.n_requests == 1 and waits == []


def test_a_body_that_is_not_json_is_a_clear_error():
    with pytest.raises(EngineRequestError, match="HTTP 200 but the body is not JSON: <html>"):
        make(lambda request: httpx.Response(200, text="<html>proxy login</html>")).generate(["q"], max_new_tokens=9)


def test_disk_cache_answers_repeated_requests(tmp_path):
    kw = dict(n=2, max_new_tokens=32, temperature=0.5, seed=0, keys=["x"])
    server = Server()
    first = make(server, cache_dir=str(tmp_path)).generate(["q"], **kw)
    assert len(server.requests) == 2 and len(list(tmp_path.glob("*.json"))) == 2
    eng = make(server, cache_dir=str(tmp_path))
    assert eng.generate(["q"], **kw) == first and eng.n_requests == 0 and len(server.requests) == 2
    eng.generate(["q"], **{**kw, "temperature": 0.6})  # other settings are other requests
    assert len(server.requests) == 4


def test_a_real_http_server(monkeypatch):
    """The same client over a socket: a 503 with Retry-After: 0, then the answer."""
    seen: list[tuple[str, dict, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body, self.headers.get("Authorization")))
            status, data = (503, b"busy") if len(seen) == 1 else (200, json.dumps(answer(body)).encode())
            self.send_response(status)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("TEACHER_KEY", "sk-real")
    try:
        eng = make(url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", api_key_env="TEACHER_KEY")
        ((c,),) = eng.generate(["2+2?"], max_new_tokens=16, seed=3)
        eng.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert c.text.startswith("echo ") and len(seen) == 2 and eng.n_requests == 2
    assert seen[1][0] == "/v1/chat/completions" and seen[1][2] == "Bearer sk-real"
