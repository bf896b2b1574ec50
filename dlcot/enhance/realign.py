"""Reading a judge's answer: the JSON object in it, and the place in the trace of every text it quotes.

A judge never returns offsets: it quotes the text it means, and the quote is found in the trace, in three tries:
1. exact (`str.find`);
2. after whitespace normalisation (runs of whitespace compared as one space, leading/trailing trimmed): models
   often re-flow line breaks; the match is mapped back to original offsets;
3. fuzzy: the window of the trace with as many words as the quote whose `difflib.SequenceMatcher.ratio()`
   against it is highest, accepted at `FUZZY_RATIO` (0.90, SODE's realignment threshold for `quick_ratio`; we
   use the stricter `ratio()` because a short quote's `quick_ratio`, an order-free character count, accepts
   anagrams). SODE's second test (word-set Jaccard >= 0.95) is kept as an alternative acceptance.
A quote that none of these place is a validation failure (`span_not_found`) and the judge is asked again.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass

FUZZY_RATIO = 0.90  # SODE pattern_extraction.py: quick_ratio >= 0.90 ...
FUZZY_JACCARD = 0.95  # ... or word-set Jaccard >= 0.95
MIN_QUOTE_CHARS = 3
_WS = re.compile(r"\s+")
_WORD = re.compile(r"\S+")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class JudgeError(ValueError):
    """A judge answer that fails validation; `reason` is the short code counted in stats (`judge_fallbacks`)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_json(answer: str) -> dict:
    """The JSON object in a judge answer: the whole answer, a ```json fenced block, or the outermost {...}."""
    candidates = [answer.strip(), *(m.strip() for m in _FENCE.findall(answer))]
    a, b = answer.find("{"), answer.rfind("}")
    if 0 <= a < b:
        candidates.append(answer[a:b + 1])
    for c in candidates:
        try:
            obj = json.loads(c)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(obj, dict):
            return obj
    raise JudgeError("bad_json", "the answer holds no JSON object")


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    how: str  # exact | whitespace | fuzzy


def _normalised(text: str, lo: int, hi: int) -> tuple[str, list[int]]:
    """text[lo:hi] with whitespace runs collapsed to one space, and each output char's source offset."""
    out, where = [], []
    prev_space = False
    for i in range(lo, hi):
        ch = text[i]
        if ch.isspace():
            if prev_space:
                continue
            out.append(" ")
            prev_space = True
        else:
            out.append(ch)
            prev_space = False
        where.append(i)
    return "".join(out), where


def _jaccard(a: str, b: str) -> float:
    sa, sb = set(a.split()), set(b.split())
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


def locate(text: str, quote: str, lo: int = 0, hi: int | None = None, *, fuzzy: bool = True) -> Found | None:
    """Where `quote` occurs in text[lo:hi] (first occurrence), or None; see the module docstring."""
    hi = len(text) if hi is None else hi
    q = quote.strip()
    if len(q) < MIN_QUOTE_CHARS:
        return None
    i = text.find(q, lo, hi)
    if i >= 0:
        return Found(i, i + len(q), "exact")
    norm, where = _normalised(text, lo, hi)
    qn = _WS.sub(" ", q)
    i = norm.find(qn)
    if i >= 0:
        return Found(where[i], where[i + len(qn) - 1] + 1, "whitespace")
    if not fuzzy:
        return None
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, lo, hi)]
    n = len(qn.split())
    if n == 0 or len(words) < n:
        return None
    best, best_at = 0.0, None
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(qn)
    first = qn.split()[0]
    for k in range(len(words) - n + 1):
        window = _WS.sub(" ", text[words[k][0]:words[k + n - 1][1]])
        if window.split(" ", 1)[0][:3] != first[:3] and _jaccard(window, qn) < FUZZY_JACCARD:
            continue  # cheap pre-filter: a real match starts with (nearly) the same word
        matcher.set_seq1(window)
        if matcher.real_quick_ratio() < FUZZY_RATIO or matcher.quick_ratio() < FUZZY_RATIO:
            continue
        r = matcher.ratio()
        if r > best:
            best, best_at = r, k
    if best_at is not None and best >= FUZZY_RATIO:
        return Found(words[best_at][0], words[best_at + n - 1][1], "fuzzy")
    for k in range(len(words) - n + 1):  # SODE's alternative test: nearly the same words
        window = _WS.sub(" ", text[words[k][0]:words[k + n - 1][1]])
        if _jaccard(window, qn) >= FUZZY_JACCARD:
            return Found(words[k][0], words[k + n - 1][1], "fuzzy")
    return None
