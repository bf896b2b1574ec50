"""Helpers shared by the eval tests."""
from __future__ import annotations


class WhitespaceTokenizer:
    """One token per whitespace-separated word, so token counts can be computed by hand."""

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self.words: list[str] = []

    def _ids(self, text: str) -> list[int]:
        for w in text.split():
            if w not in self.vocab:
                self.vocab[w] = len(self.words)
                self.words.append(w)
        return [self.vocab[w] for w in text.split()]

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": self._ids(texts) if isinstance(texts, str) else [self._ids(t) for t in texts]}

    def decode(self, ids):
        return " ".join(self.words[i] for i in ids)
