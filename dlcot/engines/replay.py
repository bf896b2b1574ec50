"""Stored responses as an engine: outputs of any other system (another framework's generations, a teacher's
traces) are scored with exactly the same extraction and metrics as dlcot's own generations.

Responses are matched to prompts by `id` (the stored `id_field` equals the benchmark's problem id, passed as
`keys`) or by problem text (`match="problem"`: the stored problem, whitespace-normalised, occurs in the prompt;
the longest such problem wins). Several stored lines with one id are that prompt's samples 0, 1, ... A prompt
with no stored response gets a Completion with finish_reason "missing", which the caller must count.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from dlcot.engines.base import Completion, prompt_keys
from dlcot.errors import ConfigError, RecordError
from dlcot.records import Reject, read_jsonl


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class ReplayEngine:
    name = "replay"

    def __init__(self, path: str, *, response_field: str = "response", id_field: str = "id", match: str = "id",
                 problem_field: str = "problem", tokenizer=None, tokenizer_name: str = "qwen2"):
        from dlcot.tokens import load_tokenizer

        if not path:
            raise ConfigError("engine=replay needs engine.path=<JSONL of stored responses>")
        self.match, self.tokenizer_name = match, tokenizer_name
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(tokenizer_name)
        self.responses: dict[str, list[str]] = defaultdict(list)
        key_field = id_field if match == "id" else problem_field
        for line, obj in read_jsonl(path):
            if isinstance(obj, Reject):
                raise RecordError(obj.detail)  # the detail names the file and line already
            if obj.get(key_field) is None:
                raise RecordError(f"no {key_field!r} to match responses by (set engine.id_field / "
                                  "engine.problem_field)", path=path, line=line, field=key_field)
            if not isinstance(obj.get(response_field), str):
                raise RecordError("missing or not a string (set engine.response_field=<field>)", path=path,
                                  line=line, field=response_field)
            key = str(obj[key_field]) if match == "id" else _norm(obj[key_field])
            self.responses[key].append(obj[response_field])
        if not self.responses:
            raise RecordError("no stored responses", path=path)
        # longest first, so a problem that contains another shorter stored problem is matched to itself
        self._by_length = sorted(self.responses, key=len, reverse=True) if match == "problem" else []

    def _lookup(self, prompt: str, key: str) -> list[str]:
        if self.match == "id":
            return self.responses.get(key, [])
        text = _norm(prompt)
        return next((self.responses[p] for p in self._by_length if p in text), [])

    def chat(self, texts: Sequence[str], system_prompt: str | None = None) -> list[str]:
        return list(texts)

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 keys: Sequence[str] | None = None) -> list[list[Completion]]:
        keys = prompt_keys(prompts, keys)
        out = []
        for prompt, key in zip(prompts, keys, strict=True):
            stored = self._lookup(prompt, key)
            counts = self.tokenizer([stored[j] for j in range(min(n, len(stored)))],
                                    add_special_tokens=False)["input_ids"] if stored else []
            out.append([Completion(stored[j], len(counts[j]), "stop") if j < len(stored)
                        else Completion("", 0, "missing") for j in range(n)])
        return out

    def close(self) -> None:
        pass
