"""The one generation interface every stage uses (docs/architecture.md §7), and the helpers engines share.

An engine turns already-formatted prompt strings into `n` completions each. Prompts are chat-formatted by the
engine's own `chat()` (the model's template for hf/vllm; identity where a server or a file does it), so a stage
writes `engine.generate(engine.chat(texts), ...)` whatever the backend. `keys` are stable prompt identifiers:
seeds derive from (seed, key, sample index), so a sample is the same whether it is generated in a batch of 8,
alone, or after a resume; the replay engine looks stored responses up by them.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "missing"]


@dataclass(frozen=True)
class Completion:
    """One generated response: its text (stop string removed), token count, and why generation ended.

    finish_reason: "stop" (eos or a stop string), "length" (hit max_new_tokens: a truncated response),
    "missing" (replay only: no stored response for this prompt).
    """
    text: str
    n_tokens: int
    finish_reason: FinishReason = "stop"


@runtime_checkable
class Engine(Protocol):
    """What every backend implements. `tokenizer_name` names the tokenizer that counted `n_tokens`."""

    name: str
    tokenizer_name: str

    def chat(self, texts: Sequence[str], system_prompt: str | None = None) -> list[str]:
        """User messages → prompt strings in the form `generate` expects."""
        ...

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 keys: Sequence[str] | None = None) -> list[list[Completion]]:
        """`n` completions per prompt, in prompt order."""
        ...

    def close(self) -> None:
        ...


def sample_seed(seed: int, key: str, sample: int) -> int:
    """A 63-bit seed for one sample, independent of batching and of the other prompts."""
    digest = hashlib.sha256(f"{seed}\x00{key}\x00{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def prompt_keys(prompts: Sequence[str], keys: Sequence[str] | None) -> list[str]:
    """The caller's keys, or a content hash of each prompt when none are given."""
    if keys is None:
        return [hashlib.sha256(p.encode()).hexdigest()[:16] for p in prompts]
    if len(keys) != len(prompts):
        raise ValueError(f"generate: {len(keys)} keys for {len(prompts)} prompts")
    return [str(k) for k in keys]


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text up to the earliest stop string (excluded), and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def chat_with_template(tokenizer, texts: Sequence[str], system_prompt: str | None, where: str) -> list[str]:
    """Prompts rendered with the tokenizer's chat template (generation prompt added)."""
    from dlcot.errors import ModelError

    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"{where}: the tokenizer has no chat template; save one with the tokenizer "
                         "(chat_template.jinja) or evaluate raw prompts with eval.chat=false")
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [tokenizer.apply_chat_template([*head, {"role": "user", "content": t}], tokenize=False,
                                          add_generation_prompt=True) for t in texts]
