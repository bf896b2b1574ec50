"""Offline, rule-based DLCoT segmentation: macro structure, then approaches and checks.

`segment(text, gold=None)` gives a `dlcot.records.Segmentation` in the gold format (docs/architecture.md §5): contiguous
spans covering all of `text`, approaches numbered with the answer they state (outcomes are left to
`label.py`, which checks answers with `dlcot.answers`), and `first_answer_end`.

How the macro structure is found (paper §3.1, in the project's words; what each paragraph states and how it
opens is read in reading.py):
1. *Units* are paragraphs (`cues.split_units`).
2. *Restatement* is the first unit; *conclusion* is the trailing run of closers ("I think that's correct",
   "**Final Answer**", a lone box) plus the one answer statement right before them, and starts no later than
   the paragraph the trace's final answer is read from (`cues.final_statement`).
3. *Understanding* is the run of planning units after the restatement, up to the first unit that computes
   (display math, equations with numbers) or opens with a working verb ("Let me start by ...").
4. The *first candidate answer* is the first answer statement (a sentence stating a value) that is final-like --
   boxed, "the answer is", or a conclusive sentence whose value equals the gold or the conclusion's answer --
   and that is followed by a turn (a "Wait", a check, a new approach, the conclusion); or, for a wrong first
   answer, any conclusive statement followed by an explicit check or a switch of method.
   Everything before it (after understanding) is *exploration*, everything after it up to the conclusion is
   *verification*.
5. Exploration splits into approaches where a paragraph opens with a change of method ("Alternatively",
   "a different approach", "start over"), or with a weak opener ("Maybe I can use ...") right after the trace
   says it is stuck. A "Wait" that fixes a slip does not split. Verification splits into checks at every cue
   paragraph; a check that opens with an explicit change of method and derives something is an approach.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from dlcot.answers import THOUGHT_ENDS
from dlcot.enhance import cues
from dlcot.enhance.reading import PerUnit, Statement, Statements, cue_kind
from dlcot.records import Segment, Segmentation

KINDS = ("restatement", "understanding", "approach", "verification", "conclusion")
CONCLUSION_MAX_CHARS = 400  # a conclusion paragraph is short; a long one is still reasoning
MAX_UNDERSTANDING_UNITS = 6
CONCLUSION_MAX_UNITS = 5  # the final answer's paragraph starts the conclusion if it is among the last 5


def _is_stuck(unit: cues.Unit) -> bool:
    return bool(cues.STUCK.search(unit.text[-300:].lower()))


class _Trace:
    """Per-trace working state: units, their statements and cues (each computed once, when first read)."""

    def __init__(self, text: str, gold: str | None):
        self.text = text
        self.units = cues.split_units(text)
        self.stmts: PerUnit[Statements] = PerUnit(self.units, Statements)
        self.cues: PerUnit[str | None] = PerUnit(self.units, cue_kind)
        self.gold = cues.canon(gold)

    # ---- macro structure
    def conclusion_start(self, lo: int, hi: int) -> int:
        """Index of the first unit of the trailing run of closers of units[lo:hi] (hi when there is none)."""
        i = hi
        while i > lo:
            u = self.units[i - 1]
            body = u.body
            if len(body) > CONCLUSION_MAX_CHARS:
                break
            lower = body.lower()
            bare = (body.startswith("**") and len(body) < 40) or (
                "\\boxed" in body and len(re.sub(r"\\boxed\{.*\}|\\\[|\\\]|\$|\s", "", body, flags=re.S)) < 12)
            answer = any(s.strength >= 2 for s in self.stmts[i - 1].from_last())
            if answer and self.cues[i - 1] not in ("alt", "alt?", "wait") and not bare:
                return i - 1  # the answer statement closes the conclusion run
            if bare or (cues.CLOSER.search(lower) and u.n_equals <= 1):
                i -= 1
                continue
            break
        return i if i < hi and i > lo else hi

    def work_start(self, lo: int, hi: int) -> int:
        """First unit of exploration: the first unit after the restatement that does work.

        Work is computing (display math, equations with numbers), opening with a working verb ("Let me start by
        ...") or with a change of method; a unit that opens by planning ("First, I need to understand ...",
        "I recall that ...") counts as understanding even with a little inline math. Understanding is capped at
        MAX_UNDERSTANDING_UNITS units and a third of the text.
        """
        chars = 0
        for i in range(lo, min(hi, lo + MAX_UNDERSTANDING_UNITS)):
            u = self.units[i]
            if cues.PLAN.search(u.head) and not u.has_display_math and u.n_equals <= 2:
                pass  # planning, even with a little math ("First, I notice that ... \\(2r - 7 = 0\\)")
            elif u.computes or self.cues[i] in ("alt", "alt?") or cues.WORK_START.search(u.head) or u.mathy:
                return i
            chars += u.end - u.start
            if chars > len(self.text) / 3:
                return lo
        return lo if hi - lo <= MAX_UNDERSTANDING_UNITS else min(hi, lo + MAX_UNDERSTANDING_UNITS)

    def final_value(self, concl: int) -> str:
        for i in range(len(self.units) - 1, concl - 1, -1):
            for s in self.stmts[i].from_last():
                if s.strength >= 2:
                    return cues.canon(s.value)
        return ""

    def answer_in(self, i: int, hi: int, targets: set[str]) -> Statement | None:
        """The candidate answer unit i states, if any: its last statement, when the reasoning turns right after it
        (next unit or rest of the paragraph opens with a cue, or the conclusion follows) and it is final-like
        (boxed, "the answer is", or a conclusive sentence giving the gold or the conclusion's value) -- or, for a
        wrong candidate, when it is conclusive and the turn is an explicit check or a change of method."""
        nxt = self.cues[i + 1] if i + 1 < hi else "end"
        for s in self.stmts[i].from_last():
            rest = self.text[s.end:self.units[i].end].strip()
            turn = nxt if len(rest) < 40 else _cue_text(rest)
            if turn is None:
                return None
            if s.strength >= 3 or cues.canon(s.value) in targets:
                return s
            if s.strength >= 2 and turn in ("alt", "alt?", "check", "end"):
                return s
            return None  # only the paragraph's last statement (before any turn) can be the candidate
        return None

    def first_answer(self, lo: int, hi: int, targets: frozenset[str]) -> tuple[int, Statement] | None:
        """(unit index, statement) of the first candidate final answer in units[lo:hi]."""
        for i in range(lo, hi):
            s = self.answer_in(i, hi, targets)
            if s is not None:
                return i, s
        return None


def _cue_text(text: str) -> str | None:
    return cue_kind(cues.Unit(0, len(text), text))


def _approach_answer(tr: _Trace, lo: int, hi: int) -> str | None:
    """The answer an approach spanning units[lo:hi] reaches: its last conclusive statement, unless it ends stuck."""
    if hi - lo >= 1 and _is_stuck(tr.units[hi - 1]) and not any(s.strength >= 3 for s in tr.stmts[hi - 1].from_last()):
        return None
    for i in range(hi - 1, lo - 1, -1):
        for s in tr.stmts[i].from_last():
            if s.strength >= 2:
                return s.value
    return None


class _Segments:
    """The segments being built, in reading order, with approaches numbered 1, 2, ... as they are added."""

    def __init__(self, tr: _Trace):
        self.tr = tr
        self.items: list[Segment] = []
        self.n_approaches = 0

    def add(self, kind: str, lo: int, hi: int, answer: str | None = None) -> None:
        """A segment of `kind` over units[lo:hi]."""
        units = self.tr.units
        self.items.append(Segment(kind, units[lo].start, units[hi - 1].end, answer=answer))

    def add_approach(self, lo: int, hi: int, answer: str | None = None) -> None:
        """An approach over units[lo:hi]; its answer is `answer`, else the last one it reaches."""
        self.n_approaches += 1
        ans = answer if answer is not None else _approach_answer(self.tr, lo, hi)
        units = self.tr.units
        self.items.append(Segment("approach", units[lo].start, units[hi - 1].end, self.n_approaches, ans))


@dataclass(frozen=True)
class _Layout:
    """The macro structure of a trace, in unit indices: understanding is units[1:work], exploration
    units[work:first_answer_unit + 1], verification up to `conclusion`, the conclusion from there to the end."""

    restatement_end: int
    work: int
    conclusion: int  # len(units) when the trace has no conclusion
    first_answer: Statement | None
    first_answer_unit: int
    targets: frozenset[str]  # canonical gold and final answer: values that make a statement final-like


RESTATEMENT_END = 1  # the restatement is the first unit, and any that only quote the problem (_restatement_end)


def segment(text: str, gold: str | None = None, trace_id: str = "") -> Segmentation:
    """Segment one reasoning text (see the module docstring). `gold` only helps place the first answer."""
    tr = _Trace(text, gold)
    if len(tr.units) <= 1:
        return _whole_text(tr, trace_id)
    layout = _layout(tr)
    segs = _Segments(tr)
    segs.add("restatement", 0, layout.restatement_end)
    if layout.work > layout.restatement_end:
        segs.add("understanding", layout.restatement_end, layout.work)
    _add_exploration(tr, layout, segs)
    _add_verification(tr, layout, segs)
    if layout.conclusion < len(tr.units):
        segs.add("conclusion", layout.conclusion, len(tr.units))
    segs.items[-1].end = len(text)
    return Segmentation(trace_id, len(text), _first_answer_end(tr, layout), segs.items)


def _whole_text(tr: _Trace, trace_id: str) -> Segmentation:
    """An empty text has no segments; a one-paragraph text is one approach."""
    text = tr.text
    if not tr.units:
        return Segmentation(trace_id, len(text), None, [])
    st = [s for s in tr.stmts[0].all() if s.strength >= 2]
    return Segmentation(trace_id, len(text), st[0].end if st else None,
                        [Segment("approach", 0, len(text), 1, st[-1].value if st else None)])


def _layout(tr: _Trace) -> _Layout:
    """Where understanding ends, the conclusion starts and the first candidate answer is stated."""
    conclusion = _conclusion_unit(tr)
    final = tr.final_value(conclusion)
    restatement_end = _restatement_end(tr, conclusion)
    work = tr.work_start(restatement_end, conclusion)
    targets = frozenset(v for v in (tr.gold, final) if v)
    first = tr.first_answer(work, conclusion, targets)
    if first is None:
        return _Layout(restatement_end, work, conclusion, None, conclusion - 1, targets)
    return _Layout(restatement_end, work, conclusion, first[1], first[0], targets)


_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")  # an English word, not a LaTeX command name
QUOTE_MAX_WORDS = 2


def _restatement_end(tr: _Trace, conclusion: int) -> int:
    """The restatement is the first paragraph, and when it ends by announcing a quotation ("Okay, so I need to
    compute this expression:"), the paragraphs right after it that only quote the problem: a bare formula, or a
    word or two ("Compute", then the expression on its own line)."""
    end = RESTATEMENT_END
    if not tr.units[0].body.endswith(":"):
        return end
    while end < conclusion - 1 and len(_WORD.findall(tr.units[end].body)) <= QUOTE_MAX_WORDS:
        end += 1
    return end


def _conclusion_unit(tr: _Trace) -> int:
    """The first conclusion unit: the trailing run of closers, moved back to the paragraph the trace's final
    answer is read from when that lies within the last CONCLUSION_MAX_UNITS paragraphs. A solution written out
    after the thought closes (R1-style `...</think>` then a clean write-up) is all conclusion: the run of closers
    is then looked for where the thought ends."""
    n = len(tr.units)
    conclusion = tr.conclusion_start(RESTATEMENT_END + 1, _thought_end(tr))
    _, stated_at = cues.final_statement(tr.text)
    if stated_at is not None:
        unit = bisect.bisect_right([u.start for u in tr.units], stated_at) - 1
        if RESTATEMENT_END + 1 < unit < conclusion and n - unit <= CONCLUSION_MAX_UNITS:
            conclusion = unit
    return conclusion


def _thought_end(tr: _Trace) -> int:
    """1 + the index of the unit where the thought closes, when a written solution follows it; else len(units)."""
    close = max(tr.text.rfind(tag) for tag in THOUGHT_ENDS)
    if close < 0 or not tr.text[close:].split(">", 1)[1].strip():
        return len(tr.units)
    end = bisect.bisect_right([u.start for u in tr.units], close)
    return end if end > RESTATEMENT_END + 1 else len(tr.units)


def _add_exploration(tr: _Trace, layout: _Layout, segs: _Segments) -> None:
    """Exploration, units[work:first_answer_unit + 1], split into approaches at changes of method; the last one
    reaches the first candidate answer."""
    bounds = [*_approach_starts(tr, layout.work, layout.first_answer_unit), layout.first_answer_unit + 1]
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
        if hi > lo:
            last = k == len(bounds) - 2
            segs.add_approach(lo, hi, layout.first_answer.value if (last and layout.first_answer) else None)


def _approach_starts(tr: _Trace, work: int, last: int) -> list[int]:
    """Units in [work, last] that open an approach: the first, then every decisive change of method, or a weak
    opener right after the trace says it is stuck."""
    units = tr.units
    starts = [work]
    for i in range(work + 1, last + 1):
        cue = tr.cues[i]
        stuck = _is_stuck(units[i - 1]) or bool(cues.STUCK.search(units[i].head))
        if cue == "alt" or (stuck and (cue == "alt?" or cues.WEAK_NEW.search(units[i].head))):
            if starts[-1] == i - 1 and len(units[i - 1].body) < 150 and i - 1 > work:
                continue  # the previous paragraph only announced the switch ("Maybe there's a better way.")
            starts.append(i)
    return starts


def _add_verification(tr: _Trace, layout: _Layout, segs: _Segments) -> None:
    """Verification, after the first answer up to the conclusion: one check per cue paragraph; an explicit change
    of method that derives something is an approach."""
    i = layout.first_answer_unit + 1
    while i < layout.conclusion:
        alt = tr.cues[i] in ("alt", "alt?")
        j = _alternative_end(tr, layout, i) if alt else _check_end(tr, layout, i)
        chars = tr.units[j - 1].end - tr.units[i].start
        answered = any(s.strength >= 2 for s in tr.stmts[j - 1].from_last())
        derives = answered or (chars >= 200 and any(u.mathy for u in tr.units[i:j]))
        # a hedged switch ("perhaps there's a simpler way") counts only when it gets to an answer
        if alt and derives and (tr.cues[i] == "alt" or answered):
            segs.add_approach(i, j)
        else:
            _add_check(tr, segs, i, j, chars)
        i = j


def _alternative_end(tr: _Trace, layout: _Layout, i: int) -> int:
    """End (exclusive unit index) of an alternative approach opening at unit i: it runs until it states a
    final-like answer, or until the next change of method."""
    units, j = tr.units, i + 1
    while j < layout.conclusion and tr.answer_in(j - 1, layout.conclusion, layout.targets) is None and not (
            tr.cues[j] in ("alt", "alt?") and units[j].start - units[i].start >= 300):
        j += 1
    return j


def _check_end(tr: _Trace, layout: _Layout, i: int) -> int:
    """End (exclusive unit index) of a check opening at unit i: the next cue paragraph."""
    j = i + 1
    while j < layout.conclusion and tr.cues[j] is None:
        j += 1
    return j


def _add_check(tr: _Trace, segs: _Segments, i: int, j: int, chars: int) -> None:
    """units[i:j] as a check, with the last answer it states; a short or cue-less piece extends the check
    before it."""
    answer = next((s.value for k in range(j - 1, i - 1, -1) for s in tr.stmts[k].from_last() if s.strength >= 2),
                  None)
    last = segs.items[-1]
    if last.kind == "verification" and (chars < 120 or tr.cues[i] is None):
        last.end = tr.units[j - 1].end
        last.answer = answer or last.answer
    else:
        segs.add("verification", i, j, answer)


def _first_answer_end(tr: _Trace, layout: _Layout) -> int | None:
    """End of the first candidate answer (trailing whitespace excluded); the conclusion's start without one."""
    units, text = tr.units, tr.text
    if layout.first_answer is not None:
        end: int | None = layout.first_answer.end
    else:
        end = units[layout.conclusion].start if layout.conclusion < len(units) else None
    if end is not None:
        while end > 0 and text[end - 1].isspace():
            end -= 1
    return end
