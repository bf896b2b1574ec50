"""The OpenAI-compatible engine against a real HTTP server on 127.0.0.1 (started here): request bodies, chat and
completions endpoints, per-sample seeds, retries after server errors, the on-disk cache, and failure messages."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dlcot.engines.openai import EngineRequestError, OpenAIEngine


class FakeServer:
    """Answers `echo <seed>: <prompt>`; the first `fail_first` requests get HTTP 503."""

    def __init__(self, fail_first: int = 0, status: int = 503):
        self.requests: list[dict] = []
        self.fail_first, self.status = fail_first, status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if len(outer.requests) <= outer.fail_first:
                    self.send_response(outer.status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                prompt = body["messages"][0]["content"] if "messages" in body else body["prompt"]
                text = f"echo {body['seed']}: {prompt} \\boxed{{4}} STOP tail"
                choice = ({"message": {"role": "assistant", "content": text}} if "messages" in body
                          else {"text": text})
                choice["finish_reason"] = "length" if body["max_tokens"] < 5 else "stop"
                data = json.dumps({"choices": [choice]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    srv = FakeServer()
    yield srv
    srv.close()


class CharTokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(range(len(text)))}


def make(url, **kw):
    kw.setdefault("tokenizer", CharTokenizer())
    return OpenAIEngine(url, "tiny", backoff_s=0.01, **kw)


def test_chat_requests_carry_sampling_settings_and_per_sample_seeds(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    eng = make(server.url, concurrency=4)
    out = eng.generate(["2+2?", "3+1?"], n=2, max_new_tokens=64, temperature=0.7, top_p=0.9, stop=["STOP"],
                       seed=1, keys=["a", "b"])
    assert len(server.requests) == 4 and {r["path"] for r in server.requests} == {"/v1/chat/completions"}
    body = server.requests[0]["body"]
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"], body["stop"]) == (
        "tiny", 64, 0.7, 0.9, ["STOP"])
    assert server.requests[0]["auth"] == "Bearer sk-test"
    seeds = {r["body"]["seed"] for r in server.requests}
    assert len(seeds) == 4  # every sample its own seed
    first = out[0][0]
    assert first.text.startswith("echo ") and first.text.endswith("2+2? \\boxed{4} ")  # cut at the stop string
    assert first.n_tokens == len(first.text) and first.finish_reason == "stop"
    again = make(server.url).generate(["2+2?"], n=2, max_new_tokens=64, temperature=0.7, top_p=0.9,
                                      stop=["STOP"], seed=1, keys=["a"])
    assert [c.text for c in again[0]] == [c.text for c in out[0]]  # seeds depend on (seed, key, sample) only


def test_completions_endpoint_and_length_finish(server):
    eng = make(server.url, endpoint="completions")
    ((c,),) = eng.generate(["<|im_start|>user\nhi"], max_new_tokens=3)
    assert server.requests[0]["path"] == "/v1/completions" and server.requests[0]["body"]["prompt"].endswith("hi")
    assert c.finish_reason == "length"


def test_retries_with_backoff_after_server_errors():
    srv = FakeServer(fail_first=2)
    try:
        eng = make(srv.url, max_retries=3)
        ((c,),) = eng.generate(["q"], max_new_tokens=10)
        assert c.text.startswith("echo") and len(srv.requests) == 3 and eng.n_requests == 3
    finally:
        srv.close()


def test_gives_up_with_a_clear_error():
    srv = FakeServer(fail_first=100)
    try:
        with pytest.raises(EngineRequestError, match="HTTP 503 after 3 tries"):
            make(srv.url, max_retries=2).generate(["q"], max_new_tokens=10)
    finally:
        srv.close()
    bad = FakeServer(fail_first=100, status=400)  # a client error is not retried
    try:
        with pytest.raises(EngineRequestError, match="HTTP 400 after 1 tries"):
            make(bad.url, max_retries=5).generate(["q"], max_new_tokens=10)
    finally:
        bad.close()


def test_disk_cache_answers_repeated_requests(server, tmp_path):
    kw = dict(n=2, max_new_tokens=32, temperature=0.5, seed=0, keys=["x"])
    first = make(server.url, cache_dir=str(tmp_path)).generate(["q"], **kw)
    assert len(server.requests) == 2 and len(list(tmp_path.glob("*.json"))) == 2
    eng = make(server.url, cache_dir=str(tmp_path))
    assert eng.generate(["q"], **kw) == first and eng.n_requests == 0 and len(server.requests) == 2
    eng.generate(["q"], **{**kw, "temperature": 0.6})  # other settings are other requests
    assert len(server.requests) == 4
