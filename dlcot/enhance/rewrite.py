"""`enhance.rewrite=llm`: the judge rewrites the text right after each cut so it reads on fluently (SODE asks an
LLM to remove the parts and keep the rest fluent; the paper's last step). dlcot keeps its verbatim splice and
asks only for the *head* of each seam (the kept text from the cut to the end of its paragraph, at most
HEAD_CHARS), with the text before the cut as context.

A rewrite is accepted only if the mathematics survives: the head's math tokens (numbers, variables, LaTeX
commands, operators: `cluster.math_tokens`) must be exactly the same sequence before and after, so every kept
equation is still there, unchanged and in order; and the final answer of the rewritten text must be the
final answer of the spliced one (checked by the pipeline, which rejects such a row as `answer_changed`; here
the row spliced without the rewrites is kept instead). Anything else falls back to the connective repair of
simplify.py, counted as a `rewrite` fallback.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlcot.enhance.cluster import math_tokens
from dlcot.enhance.realign import JudgeError, parse_json
from dlcot.enhance.simplify import _minus

HEAD_CHARS = 600
CONTEXT_CHARS = 400


def seams(text: str, lineage: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    """(source offset, head, text before) of each seam of a spliced row: a kept piece right after a cut."""
    cuts = [tuple(c) for c in lineage.get("error_spans_cut", [])]
    out: list[tuple[int, str, str]] = []
    prev: tuple[int, int] | None = None
    prev_cut = False
    for seg in lineage["segments"]:
        if not seg["kept"]:
            prev_cut = True
            continue
        parts = _minus(seg["start"], seg["end"], cuts)
        for a, b in parts:
            if (prev_cut or a != seg["start"]) and prev is not None:
                end = text.find("\n\n", a, b)
                end = min(b if end < 0 else end, a + HEAD_CHARS)
                if text[a:end].strip():
                    out.append((a, text[a:end], text[max(prev[0], prev[1] - CONTEXT_CHARS):prev[1]]))
            prev, prev_cut = (a, b), False
        if not parts:
            prev_cut = True
    return out


def parse_rewrite(answer: str, old: str) -> str:
    """The rewritten head, or JudgeError when it is empty or its mathematics differs from `old`'s."""
    new = parse_json(answer).get("after")
    if not isinstance(new, str) or not new.strip():
        raise JudgeError("bad_schema", 'expected {"after": "<rewritten text>"}')
    if math_tokens(new) != math_tokens(old):
        raise JudgeError("equations_changed", "every number, variable and equation must stay exactly as written")
    lead = old[:len(old) - len(old.lstrip())]  # keep the seam's own leading whitespace
    trail = old[len(old.rstrip()):]
    return lead + new.strip() + trail
