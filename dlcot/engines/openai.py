"""Any OpenAI-compatible server (`vllm serve`, SGLang, a hosted API) over HTTP (httpx; retries by tenacity).

Requests run in a thread pool (`concurrency`) over one connection pool, and are cached on disk by a hash of
(base URL, request body), so a crashed or repeated run does not pay for the same completion twice. A connection
error, a timeout, 408/409/429 or a 5xx is retried (`max_retries` times) after the wait the server asks for in
`Retry-After` (seconds or an HTTP date), else after an exponential backoff (`backoff_s`, doubling), either
capped at `MAX_WAIT_S`; any other error status (a 400 for a bad request, 401 for a missing key, 404 for a wrong
model or URL) is not retried and stops the run with the server's message. `endpoint="chat"` sends each prompt
as one user message (the server applies the model's chat template); `endpoint="completions"` sends the prompt
text as is. Each sample is its own request with its own seed (servers that honour `seed` give reproducible
samples). Token counts come from a named tokenizer, not from `usage`, which servers report per request, not per
choice.
"""
from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from dlcot.engines.base import Completion, cut_at_stop, prompt_keys, sample_seed
from dlcot.errors import ConfigError, DlcotError
from dlcot.records import atomic_write_json

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_WAIT_S = 60.0  # the longest wait before a retry, whatever the backoff or the server's Retry-After says


class EngineRequestError(DlcotError):
    """The server kept failing (or refused the request) after all retries."""


class _Retryable(Exception):
    """A failed try worth another: `why` for the messages, the server's Retry-After in seconds if it sent one."""

    def __init__(self, why: str, retry_after: float | None = None):
        super().__init__(why)
        self.why, self.retry_after = why, retry_after


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks to wait: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None when
    absent or unreadable (then the backoff applies)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class OpenAIEngine:
    name = "openai"

    def __init__(self, base_url: str, model: str, *, endpoint: str = "chat", api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, max_retries: int = 4, timeout_s: float = 120.0, cache_dir: str | None = None,
                 backoff_s: float = 1.0, tokenizer=None, tokenizer_name: str = "qwen2",
                 transport: httpx.BaseTransport | None = None):
        from dlcot.tokens import load_tokenizer

        if not base_url:
            raise ConfigError("engine=openai needs engine.base_url=http://HOST:PORT/v1")
        self.url = base_url.rstrip("/") + ("/chat/completions" if endpoint == "chat" else "/completions")
        self.model, self.endpoint = model, endpoint
        self.api_key, self.api_key_env = os.environ.get(api_key_env, ""), api_key_env
        self.concurrency, self.max_retries = max(1, concurrency), max_retries
        self.timeout_s, self.backoff_s = timeout_s, backoff_s
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(tokenizer_name)
        self.tokenizer_name = tokenizer_name
        self.n_requests = 0  # sent over HTTP (cache hits excluded), for tests and logs
        self._count = threading.Lock()
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.client = httpx.Client(headers=headers, timeout=timeout_s, transport=transport,
                                   limits=httpx.Limits(max_connections=self.concurrency))

    def chat(self, texts: Sequence[str], system_prompt: str | None = None) -> list[str]:
        if system_prompt:
            if self.endpoint == "chat":
                raise ConfigError("engine=openai endpoint=chat: a system prompt is not supported; put it in the "
                                  "prompt template")
            return [f"{system_prompt}\n\n{t}" for t in texts]
        return list(texts)

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 keys: Sequence[str] | None = None) -> list[list[Completion]]:
        keys = prompt_keys(prompts, keys)
        bodies = []
        for prompt, key in zip(prompts, keys, strict=True):
            for j in range(n):
                body = {"model": self.model, "max_tokens": max_new_tokens, "temperature": temperature,
                        "top_p": top_p, "n": 1, "seed": sample_seed(seed, key, j) % 2**31}
                if stop:
                    body["stop"] = list(stop)
                if self.endpoint == "chat":
                    body["messages"] = [{"role": "user", "content": prompt}]
                else:
                    body["prompt"] = prompt
                bodies.append(body)
        with ThreadPoolExecutor(self.concurrency) as pool:
            results = list(pool.map(self._cached_request, bodies))
        completions = [self._completion(r, stop) for r in results]
        return [completions[i * n:(i + 1) * n] for i in range(len(prompts))]

    def _completion(self, response: dict, stop: Sequence[str]) -> Completion:
        choice = response["choices"][0]
        text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
        text, _ = cut_at_stop(text or "", stop)
        reason = "length" if choice.get("finish_reason") == "length" else "stop"
        return Completion(text, len(self.tokenizer(text, add_special_tokens=False)["input_ids"]), reason)

    def _cached_request(self, body: dict) -> dict:
        blob = json.dumps({"url": self.url, "body": body}, sort_keys=True).encode()
        path = self.cache_dir / f"{hashlib.sha256(blob).hexdigest()}.json" if self.cache_dir else None
        if path is not None and path.exists():
            return json.loads(path.read_text())
        response = self._request(body)
        if path is not None:
            atomic_write_json(path, response)
        return response

    def _request(self, body: dict) -> dict:
        retrying = Retrying(stop=stop_after_attempt(self.max_retries + 1), wait=self._wait, sleep=_sleep,
                            retry=retry_if_exception_type(_Retryable), before_sleep=self._log_retry, reraise=True)
        try:
            return retrying(self._post, body)
        except _Retryable as err:
            raise EngineRequestError(f"{self.url}: {err.why} after {self.max_retries + 1} tries") from err

    def _post(self, body: dict) -> dict:
        """One try: the response's JSON, a _Retryable, or an EngineRequestError for a refused request."""
        with self._count:
            self.n_requests += 1
        try:
            resp = self.client.post(self.url, json=body)
        except httpx.TransportError as err:  # connection refused or reset, timeouts
            raise _Retryable(f"{type(err).__name__}: {err}") from err
        detail = resp.text[:500]
        if resp.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {resp.status_code}: {detail}", retry_after_s(resp.headers.get("Retry-After")))
        if resp.is_error:
            raise EngineRequestError(f"{self.url}: HTTP {resp.status_code}, not retried (the server refused the "
                                     f"request): {detail}; check engine.base_url, engine.endpoint, the served model "
                                     f"{self.model!r} and the key in ${self.api_key_env}")
        try:
            return resp.json()
        except ValueError as err:
            raise EngineRequestError(f"{self.url}: HTTP {resp.status_code} but the body is not JSON: {detail}") from err

    def _wait(self, state: RetryCallState) -> float:
        """The server's Retry-After when it sent one, else exponential backoff; never more than MAX_WAIT_S."""
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, _Retryable) and err.retry_after is not None:
            return min(err.retry_after, MAX_WAIT_S)
        return wait_exponential(multiplier=self.backoff_s, max=MAX_WAIT_S)(state)

    def _log_retry(self, state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: %s; retrying in %.1f s (try %d of %d)", self.url, getattr(err, "why", err), wait,
                    state.attempt_number + 1, self.max_retries + 1)

    def close(self) -> None:
        self.client.close()
