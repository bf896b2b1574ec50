"""Canned or rule-made responses, for tests and dry runs of a stage without a model.

A response is given by a function `(prompt, sample index) -> text` or by rules `{regex: text}` (first regex that
matches the prompt wins; the key `default` answers prompts no regex matches). Token counts come from a named
tokenizer and `max_new_tokens` is honoured: a response longer than that is cut to its first `max_new_tokens`
tokens with finish_reason "length", as a model would be.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from dlcot.engines.base import Completion, cut_at_stop, prompt_keys
from dlcot.errors import ConfigError

Responder = Callable[[str, int], str]


class ScriptedEngine:
    name = "scripted"

    def __init__(self, respond: Responder | Mapping[str, str], *, tokenizer=None, tokenizer_name: str = "qwen2"):
        from dlcot.tokens import load_tokenizer

        if isinstance(respond, Mapping):
            if not respond:
                raise ConfigError("engine=scripted needs engine.rules ({regex: response}) or a responder function")
            fallback = respond.get("default", "")
            rules = [(re.compile(pat, re.DOTALL), text) for pat, text in respond.items() if pat != "default"]

            def respond(prompt: str, sample: int) -> str:
                return next((text for rx, text in rules if rx.search(prompt)), fallback)

        self.respond: Responder = respond
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(tokenizer_name)
        self.tokenizer_name = tokenizer_name

    def chat(self, texts: Sequence[str], system_prompt: str | None = None) -> list[str]:
        return list(texts)

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 keys: Sequence[str] | None = None) -> list[list[Completion]]:
        prompt_keys(prompts, keys)  # validates the lengths like every engine
        return [[self._complete(self.respond(p, j), max_new_tokens, stop) for j in range(n)] for p in prompts]

    def _complete(self, text: str, max_new_tokens: int, stop: Sequence[str]) -> Completion:
        text, hit = cut_at_stop(text, stop)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > max_new_tokens and not hit:
            return Completion(self.tokenizer.decode(ids[:max_new_tokens]), max_new_tokens, "length")
        return Completion(text, len(ids), "stop")

    def close(self) -> None:
        pass
