"""Simplification policies: which spans of a labelled trace stay, spliced verbatim, with light connective repair.

DLCoT's *trunk* is the reasoning up to and including the first correct approach (restatement, understanding,
failed approaches and the checks that caught them). After it come later approaches and checks, then the
conclusion. A policy (conf/enhance/*.yaml) decides per span:
- `after_trunk: drop` cuts every approach and check after the trunk (`keep_first_correct`);
- `dedup: all | last_k` cuts every / the last k *redundant* spans (members after the first of a method cluster,
  see cluster.py);
- `drop_incorrect_offtrunk` cuts approaches after the trunk whose outcome is incorrect or incomplete, with the
  check right after one that opens by disputing it ("But wait, that doesn't match ..."); with
  `offtrunk_needs_error` only those the judge found errors in (SODE's `delete_all`); `unverified` ones stay;
- `cut_error_spans` cuts character ranges a backend marked as errors, wherever they lie in a kept approach (on
  the trunk, and in correct approaches off it: SODE's `delete_all`; the offline backend marks none).
Never cut: restatement, understanding, the first correct approach, the conclusion.

The enhanced text is the kept spans' original text in order, never rewritten; the only edit is at a seam (a
kept span right after a cut one): a dangling leading connective from `connectives` ("Wait,", "Alternatively,",
"But") is removed and the next letter capitalised when it starts an English word -- never a variable or a
math token ("Wait, x = 3 works" → "x = 3 works", not "X = 3 works"). `lineage` records every span's fate and
every repair, so the enhanced text can be rebuilt from the original (tests do exactly that).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlcot.enhance.cues import NEGATION, head_of
from dlcot.records import Segment
from dlcot.schema import EnhanceConfig

# A policy is the `enhance` section itself (dlcot.schema.EnhanceConfig: options, defaults and checks live there);
# `decide` and `splice` read its after_trunk, dedup(_k), drop_incorrect_offtrunk, offtrunk_needs_error,
# cut_error_spans, repair_connectives and connectives.
Policy = EnhanceConfig


def is_passthrough(policy: Policy) -> bool:
    """The policy cuts nothing: every span stays."""
    return policy.after_trunk == "keep" and policy.dedup == "none" and not policy.drop_incorrect_offtrunk and not (
        policy.cut_error_spans)


@functools.cache
def _longest_first(connectives: tuple[str, ...]) -> tuple[str, ...]:
    """Openers that point back at text a cut may have removed, longest first: the first match wins."""
    return tuple(sorted(connectives, key=len, reverse=True))


@dataclass
class Decision:
    """The fate of one segment: kept, or cut with a reason."""

    kept: bool
    reason: str | None = None


@dataclass
class Splice:
    text: str
    lineage: dict[str, Any] = field(default_factory=dict)
    kinds: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, kind) in the enhanced text


def decide(segments: Sequence[Segment], clusters: Sequence[int | None], policy: Policy,
           texts: Sequence[str] | None = None, *, error_spans: Sequence[tuple[int, int]] = (),
           protect_from: int | None = None) -> list[Decision]:
    """Keep/cut per segment (see the module docstring). `clusters` has a cluster id per segment (None for kinds
    that are never clustered); `texts` (the segments' text) lets a dispute right after a cut approach go too;
    `error_spans` tell which approaches have errors (`offtrunk_needs_error`); every segment ending after
    `protect_from` (the offset of the paragraph the final answer is read from) is kept, whatever kind a
    segmenter gave it, so the conclusion survives even where a short trace's last statement looks like a check."""
    n = len(segments)
    first_correct = next((i for i, s in enumerate(segments) if s.kind == "approach" and s.outcome == "correct"),
                         None)
    protected = {i for i, s in enumerate(segments) if s.kind in ("restatement", "understanding", "conclusion")
                 or (protect_from is not None and s.end > protect_from)}
    if first_correct is not None:
        protected.add(first_correct)
    out = [Decision(True) for _ in range(n)]
    # redundancy: members after the first of their cluster
    seen: set[int] = set()
    redundant = []
    for i, c in enumerate(clusters):
        if c is None:
            continue
        if c in seen and i not in protected:
            redundant.append(i)
        seen.add(c)
    if policy.dedup == "all":
        for i in redundant:
            out[i] = Decision(False, "redundant")
    elif policy.dedup == "last_k":
        for i in redundant[-policy.dedup_k:]:
            out[i] = Decision(False, "redundant")
    if first_correct is None:
        return out
    for i in range(first_correct + 1, n):
        s = segments[i]
        if i in protected:
            continue
        if policy.after_trunk == "drop":
            out[i] = Decision(False, "after_trunk")
        elif (policy.drop_incorrect_offtrunk and s.kind == "approach" and s.outcome in ("incorrect", "incomplete")
              and (not policy.offtrunk_needs_error or any(a < s.end and b > s.start for a, b in error_spans))):
            out[i] = Decision(False, f"{s.outcome}_offtrunk")
            nxt = i + 1
            if (texts is not None and nxt < n and segments[nxt].kind == "verification"
                    and NEGATION.search(head_of(texts[nxt]))):
                out[nxt] = Decision(False, "disputes_dropped_approach")
    return out


_WORD_HEAD = re.compile(r"([A-Za-z]+)(.?)")
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "max", "min", "gcd", "lcm", "mod",
               "det", "lim", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh"}


def capitalisable(rest: str) -> bool:
    """Whether the first letter of `rest` may be upper-cased: only an English word (two or more lower-case
    letters, not a function name, followed by a space or punctuation). "x = 3", "f(x)", "ab = 6", "sin x",
    "n_1" keep their case: changing it would change the mathematics."""
    m = _WORD_HEAD.match(rest)
    if not m or len(m.group(1)) < 2 or not m.group(1).islower() or m.group(1) in _MATH_WORDS:
        return False
    after = m.group(2)
    if after and after not in " ,.;:!?'\n":
        return False  # "ab=", "xy^2", "f(x)", "a_n": a variable or function
    nxt = rest[m.end():].lstrip(" ")
    return not (after == " " and nxt[:1] in ("=", "+", "-", "*", "/", "^", "<", ">", "(") and len(m.group(1)) <= 3)


def _repair(text: str, connectives: Sequence[str]) -> tuple[str, str, bool]:
    """(repaired text, removed prefix, capitalised): drop one dangling leading connective, and upper-case the
    next letter when it starts an English word (never a variable or a math token: `capitalisable`)."""
    lead = len(text) - len(text.lstrip())
    body = text[lead:]
    for conn in connectives:
        if body.startswith(conn) and (len(body) == len(conn) or not body[len(conn)].isalnum()):
            rest = body[len(conn):].lstrip(" ,")
            if not rest or not rest[0].isalpha():
                return text, "", False  # "But 3 + 4 = 7": nothing to capitalise, leave it
            removed = body[: len(body) - len(rest)]
            cap = capitalisable(rest)
            return text[:lead] + (rest[0].upper() if cap else rest[0]) + rest[1:], removed, cap
    return text, "", False


def splice(text: str, segments: Sequence[Segment], decisions: Sequence[Decision], policy: Policy,
           error_spans: Sequence[tuple[int, int]] = (), rewrites: Mapping[int, tuple[str, str]] | None = None
           ) -> Splice:
    """The enhanced text: kept segments verbatim in order (minus marked error spans), repaired at seams.
    `rewrites` {source offset of a seam: (old head, new head)} are accepted judge rewrites (rewrite.py): such a
    seam gets the new head instead of the connective repair, recorded in `lineage["rewrites"]`."""
    cuts = sorted((max(0, a), min(len(text), b)) for a, b in error_spans if b > a) if policy.cut_error_spans else []
    pieces: list[str] = []
    kinds: list[tuple[int, int, str]] = []
    repairs: list[dict[str, Any]] = []
    rewritten: list[dict[str, Any]] = []
    lineage_segs: list[dict[str, Any]] = []
    pos = 0
    prev_cut = False
    for seg, dec in zip(segments, decisions, strict=False):
        lineage_segs.append({"kind": seg.kind, "start": seg.start, "end": seg.end, "approach": seg.approach,
                             "outcome": seg.outcome, "kept": dec.kept, "reason": dec.reason})
        if not dec.kept:
            prev_cut = True
            continue
        parts = _minus(seg.start, seg.end, cuts)
        for a, b in parts:
            piece = text[a:b]
            seam = prev_cut or (a != seg.start)
            if seam and pieces and rewrites and a in rewrites and piece.startswith(rewrites[a][0]):
                old, new = rewrites[a]
                piece = new + piece[len(old):]
                rewritten.append({"at": pos, "source_offset": a, "old": old, "new": new})
            elif seam and policy.repair_connectives and pieces:
                piece, removed, cap = _repair(piece, _longest_first(tuple(policy.connectives)))
                if removed:
                    repairs.append({"at": pos, "source_offset": a, "removed": removed, "capitalised": cap})
            pieces.append(piece)
            kinds.append((pos, pos + len(piece), seg.kind))
            pos += len(piece)
            prev_cut = False
        if not parts:
            prev_cut = True
    enhanced = "".join(pieces)
    lineage = {"policy": policy.name, "segments": lineage_segs, "repairs": repairs,
               "error_spans_cut": [list(c) for c in cuts]}
    if rewrites is not None:
        lineage["rewrites"] = rewritten
    return Splice(enhanced, lineage, kinds)


def _minus(start: int, end: int, cuts: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """[start, end) without the cut ranges."""
    out, pos = [], start
    for a, b in cuts:
        if b <= pos or a >= end:
            continue
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if pos < end:
        out.append((pos, end))
    return out


def rebuild(text: str, lineage: Mapping[str, Any]) -> str:
    """Re-create an enhanced text from the original and its lineage (what tests use to prove verbatim splicing)."""
    cuts = [tuple(c) for c in lineage.get("error_spans_cut", [])]
    out: list[str] = []
    for seg in lineage["segments"]:
        if seg["kept"]:
            out.extend(text[a:b] for a, b in _minus(seg["start"], seg["end"], cuts))
    joined = "".join(out)
    edits = sorted([*lineage["repairs"], *lineage.get("rewrites", [])], key=lambda r: r["at"])
    for rep in edits:  # "at" is in enhanced-text coordinates: edits before it are final once applied in order
        if "new" in rep:
            at, old = rep["at"], rep["old"]
            assert joined[at:at + len(old)] == old, "lineage does not match the text"
            joined = joined[:at] + rep["new"] + joined[at + len(old):]
            continue
        at, removed = rep["at"], rep["removed"]
        assert joined[at:at + len(removed)] == removed, "lineage does not match the text"
        rest = joined[at + len(removed):]
        head = rest[:1].upper() if rep.get("capitalised", True) else rest[:1]
        joined = joined[:at] + head + rest[1:]
    return joined
