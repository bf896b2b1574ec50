"""Any OpenAI-compatible server (`vllm serve`, SGLang, a hosted API) over plain HTTP (urllib, no SDK).

Requests run in a thread pool (`concurrency`), are retried with exponential backoff on connection errors, 429
and 5xx, and are cached on disk by a hash of (base URL, request body), so a crashed or repeated run does not pay
for the same completion twice. `endpoint="chat"` sends each prompt as one user message (the server applies the
model's chat template); `endpoint="completions"` sends the prompt text as is. Each sample is its own request
with its own seed (servers that honour `seed` give reproducible samples). Token counts come from a named
tokenizer, not from `usage`, which servers report per request, not per choice.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dlcot.engines.base import Completion, cut_at_stop, prompt_keys, sample_seed
from dlcot.errors import ConfigError, DlcotError
from dlcot.records import atomic_write_json

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EngineRequestError(DlcotError):
    """The server kept failing (or refused the request) after all retries."""


class OpenAIEngine:
    name = "openai"

    def __init__(self, base_url: str, model: str, *, endpoint: str = "chat", api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, max_retries: int = 4, timeout_s: float = 120.0, cache_dir: str | None = None,
                 backoff_s: float = 1.0, tokenizer=None, tokenizer_name: str = "qwen2"):
        from dlcot.tokens import load_tokenizer

        if not base_url:
            raise ConfigError("engine=openai needs engine.base_url=http://HOST:PORT/v1")
        self.url = base_url.rstrip("/") + ("/chat/completions" if endpoint == "chat" else "/completions")
        self.model, self.endpoint = model, endpoint
        self.api_key = os.environ.get(api_key_env, "")
        self.concurrency, self.max_retries = max(1, concurrency), max_retries
        self.timeout_s, self.backoff_s = timeout_s, backoff_s
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(tokenizer_name)
        self.tokenizer_name = tokenizer_name
        self.n_requests = 0  # sent over HTTP (cache hits excluded), for tests and logs

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
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        for attempt in range(self.max_retries + 1):
            self.n_requests += 1
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read().decode())
            except urllib.error.HTTPError as err:
                detail = err.read().decode(errors="replace")[:500]
                if err.code not in RETRY_STATUS or attempt == self.max_retries:
                    raise EngineRequestError(
                        f"{self.url}: HTTP {err.code} after {attempt + 1} tries: {detail}") from err
                why = f"HTTP {err.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if attempt == self.max_retries:
                    raise EngineRequestError(f"{self.url}: {err} after {attempt + 1} tries") from err
                why = str(err)
            delay = self.backoff_s * 2 ** attempt
            log.warning("%s: %s; retrying in %.1f s", self.url, why, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        pass
