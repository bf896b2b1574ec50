"""The LLM judge of the enhance stage: prompts, one engine batch per step, validation with one retry, a disk cache.

A step (segment / label / cluster / rewrite) sends one prompt per trace of a chunk. `Judge.ask` renders the
step's prompt file (`conf/enhance/prompts/<step>.txt`, or `enhance.judge.prompts=DIR`), looks every prompt up in
the cache, sends the rest to the engine in **one** `generate` call, and validates each answer with the caller's
function. An answer that fails validation is asked again once, with the error stated, in a second batch for all
the failures of the step; what still fails comes back as a `JudgeError` for the caller to fall back on.

The cache (`<cache_dir>/<model id>.jsonl`, one line per answer) is keyed by sha256(model id, sampling, prompt),
and the prompt holds the step's template and the trace's text: a rerun with another simplification policy, or a
resumed run, asks the engine nothing it has asked before. Each entry stores the answer's token counts, so
what a trace "cost" (`Usage`) is the same whether its answers came from the engine or from the cache, and a
resumed run writes byte-identical rows. Lines are appended and flushed after each batch; a torn last line (a
killed run) is ignored on load.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dlcot.enhance.realign import JudgeError
from dlcot.errors import ConfigError

log = logging.getLogger(__name__)
PROMPTS_DIR = Path(__file__).resolve().parents[2] / "conf" / "enhance" / "prompts"
STEPS = ("segment", "label", "cluster", "rewrite")
RETRY_NOTE = ("\n\nYour previous answer was:\n{answer}\n\nIt was rejected: {error}\n"
              "Answer again with the corrected JSON object only.")
T = TypeVar("T")


@dataclass
class Usage:
    """What the judge spent on one trace (answers used, cached or not) and the steps that fell back."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fallbacks: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "fallbacks": list(self.fallbacks)}


def load_prompts(directory: str | None) -> dict[str, str]:
    """Every step's template; `{name}` placeholders are filled with `str.replace` (JSON braces stay literal)."""
    root = Path(directory) if directory else PROMPTS_DIR
    out = {}
    for step in STEPS:
        path = root / f"{step}.txt"
        if not path.is_file():
            raise ConfigError(f"enhance.judge.prompts={root}: no {step}.txt (one prompt file per judge step)")
        out[step] = path.read_text(encoding="utf-8")
    return out


def render(template: str, **values: str) -> str:
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template


class Judge:
    """An engine plus prompts, sampling settings and the answer cache (see the module docstring)."""

    def __init__(self, engine: Any, *, model_id: str, prompts: dict[str, str], cache_dir: str | None,
                 max_new_tokens: int = 1024, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
                 retries: int = 1, count_tokens: Callable[[list[str]], list[int]] | None = None):
        self.engine, self.model_id, self.prompts = engine, model_id, prompts
        self.sampling = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}
        self.retries = retries
        self.count_tokens = count_tokens or _engine_token_counter(engine)
        self.engine_calls = 0  # prompts sent to the engine by this process (not cached)
        self.cache_hits = 0
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_path: Path | None = None
        if cache_dir:
            name = hashlib.sha256(model_id.encode()).hexdigest()[:16]
            self._cache_path = Path(cache_dir) / f"{name}.jsonl"
            self._load()

    # ---- cache
    def _load(self) -> None:
        assert self._cache_path is not None
        if not self._cache_path.is_file():
            return
        with self._cache_path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                    self._cache[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn last line of a killed run

    def _key(self, prompt: str) -> str:
        blob = json.dumps([self.model_id, self.sampling, prompt], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _store(self, entries: list[dict[str, Any]]) -> None:
        for e in entries:
            self._cache[e["key"]] = e
        if self._cache_path is None or not entries:
            return
        self._cache_path.parent.mkdir(parents=True, exist_ok=True)
        with self._cache_path.open("a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
            fh.flush()
            os.fsync(fh.fileno())

    # ---- asking
    def _answers(self, prompts: Sequence[str], ids: Sequence[str]) -> list[dict[str, Any]]:
        """One cache entry per prompt; the uncached ones come from one engine batch. `ids` are the engine's
        prompt keys ("<step>/<trace id>", "+retry" on the second try): a replay judge's stored answers use them."""
        keys = [self._key(p) for p in prompts]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        self.cache_hits += len(keys) - len(todo)
        if todo:
            text_of = dict(zip(keys, prompts, strict=True))
            id_of = dict(zip(keys, ids, strict=True))
            texts = [text_of[k] for k in todo]
            outs = self.engine.generate(self.engine.chat(texts), n=1, keys=[id_of[k] for k in todo], **self.sampling)
            self.engine_calls += len(todo)
            n_prompt = self.count_tokens(texts)
            self._store([{"key": k, "answer": o[0].text, "finish_reason": o[0].finish_reason,
                          "prompt_tokens": p, "completion_tokens": o[0].n_tokens}
                         for k, o, p in zip(todo, outs, n_prompt, strict=True)])
        return [self._cache[k] for k in keys]

    def ask(self, step: str, ids: Sequence[str], values: Sequence[dict[str, str]],
            validate: Sequence[Callable[[str], T]], usage: Sequence[Usage]) -> list[T | JudgeError]:
        """Per item (trace `ids`): the validated result, or the JudgeError of its last try. `values` fill the
        step's template."""
        prompts = [render(self.prompts[step], **v) for v in values]
        results: list[T | JudgeError] = [JudgeError("not_asked", "")] * len(prompts)
        pending = list(range(len(prompts)))
        asked = list(prompts)
        for attempt in range(1 + self.retries):
            if not pending:
                break
            suffix = "+retry" * attempt
            entries = self._answers([asked[i] for i in pending], [f"{step}/{ids[i]}{suffix}" for i in pending])
            failed = []
            for i, e in zip(pending, entries, strict=True):
                u = usage[i]
                u.calls += 1
                u.prompt_tokens += e["prompt_tokens"]
                u.completion_tokens += e["completion_tokens"]
                try:
                    if e["finish_reason"] == "missing":
                        raise JudgeError("no_answer", "the engine has no answer for this prompt")
                    results[i] = validate[i](e["answer"])
                except JudgeError as err:
                    results[i] = err
                    failed.append(i)
                    asked[i] = prompts[i] + render(RETRY_NOTE, answer=e["answer"][:2000], error=str(err))
            pending = failed if attempt < self.retries else []
        return results


def _engine_token_counter(engine: Any) -> Callable[[list[str]], list[int]]:
    tok = getattr(engine, "tokenizer", None)
    if tok is None:
        from dlcot.tokens import load_tokenizer

        tok = load_tokenizer(getattr(engine, "tokenizer_name", "qwen2") or "qwen2")

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]

    return count
