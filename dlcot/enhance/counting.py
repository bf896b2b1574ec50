"""Token counts of an enhanced trace (lineage["tokens"]), counted by the process that writes the row.

The enhance workers do not load the tokenizer: a worker puts a `TokenJob` (the two texts and the spans) where the
counts go, and `run_stream` replaces it with `TokenJob.counts(tokenizer)` before the row is written. So the
workers are forked before the tokenizer (transformers, torch: ~6 s of CPU) is loaded and segment, label and
verify traces while the writing process loads it, and the tokenizer is loaded once, not once per worker.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any

_WS_TOKEN = re.compile(r"\S+")


def token_starts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Start offset of every token of each text (no special tokens); whitespace words without a tokenizer."""
    if tokenizer is None:
        return [[m.start() for m in _WS_TOKEN.finditer(t)] for t in texts]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if (backend is not None and backend.truncation is None and backend.padding is None
            and backend.encode_special_tokens == bool(getattr(tokenizer, "split_special_tokens", False))):
        # the fast tokenizer's own batch encoder, as `tokenizer(...)` calls it, without building a BatchEncoding
        return [[a for a, _ in e.offsets] for e in backend.encode_batch(texts, add_special_tokens=False)]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return [[a for a, _ in offs] for offs in enc["offset_mapping"]]


def tokens_per_span(token_starts: list[int], span_starts: list[int]) -> list[int]:
    """How many of the (sorted) token start offsets fall in each span, a span running from its start to the next
    one's: two binary searches per span instead of one per token."""
    edges = [bisect.bisect_left(token_starts, s) for s in span_starts] + [len(token_starts)]
    return [max(0, b - a) for a, b in zip(edges, edges[1:], strict=False)]


def by_kind(starts: list[int], spans: list[tuple[int, int, str]]) -> dict[str, int]:
    """Tokens per segment kind: each token counts for the span holding its first character (the last span that
    starts at or before it; tokens before the first span count for none). Kinds in order of first token."""
    out: dict[str, int] = {}
    for kind, n in zip((k for _, _, k in spans), tokens_per_span(starts, [s for s, _, _ in spans]), strict=True):
        if n:
            out[kind] = out.get(kind, 0) + n
    return out


@dataclass
class TokenJob:
    """What counting one kept trace's tokens needs: the raw and enhanced text, the raw segments (start, end, kind)
    with the reason each cut one was cut for (None: kept), and the enhanced text's spans by kind."""

    tokenizer_name: str
    before: str
    after: str
    segments: list[tuple[int, int, str]]
    cut_reasons: list[str | None]
    after_kinds: list[tuple[int, int, str]]

    def counts(self, before: list[int], after: list[int]) -> dict[str, Any]:
        """Tokens before and after, per segment kind, and cut per reason, from the token start offsets of the
        raw (`before`) and the enhanced text."""
        cut_by_reason: dict[str, int] = {}
        for reason, n in zip(self.cut_reasons, tokens_per_span(before, [s for s, _, _ in self.segments]),
                             strict=True):
            if n and reason is not None:
                cut_by_reason[reason] = cut_by_reason.get(reason, 0) + n
        return {"tokenizer": self.tokenizer_name, "before": len(before), "after": len(after),
                "by_kind_before": by_kind(before, self.segments), "by_kind_after": by_kind(after, self.after_kinds),
                "cut_by_reason": cut_by_reason}


def fill_counts(rows: list[dict[str, Any]], tokenizer: Any) -> None:
    """Replace the `TokenJob` of every row that has one by its counts (one batch through the tokenizer)."""
    jobs = [(row, job) for row in rows if isinstance(job := row.get("lineage", {}).get("tokens"), TokenJob)]
    if not jobs:
        return
    starts = token_starts(tokenizer, [text for _, job in jobs for text in (job.before, job.after)])
    for k, (row, job) in enumerate(jobs):
        row["lineage"]["tokens"] = job.counts(starts[2 * k], starts[2 * k + 1])
