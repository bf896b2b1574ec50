"""Offline, rule-based DLCoT segmentation: macro structure, then approaches and checks.

`segment(text, gold=None)` gives a `dlcot.records.Segmentation` in the gold format (docs/architecture.md §5): contiguous
spans covering all of `text`, approaches numbered with the answer they state (outcomes are left to
`label.py`, which checks answers with `dlcot.answers`), and `first_answer_end`.

How the macro structure is found (paper §3.1, in the project's words):
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

from dlcot.enhance import cues as C
from dlcot.records import Segment, Segmentation

KINDS = ("restatement", "understanding", "approach", "verification", "conclusion")
CONCLUSION_MAX_CHARS = 400  # a conclusion paragraph is short; a long one is still reasoning
MAX_UNDERSTANDING_UNITS = 6
C_MAX_UNITS = 5  # a conclusion is at most this many paragraphs


@dataclass(frozen=True)
class Statement:
    """A sentence stating a candidate value: strength 3 = boxed or "the answer is", 2 = conclusive ("So,",
    "Therefore"), 1 = a bare result line ("Area = 288 / 18 = 16")."""

    start: int
    end: int
    value: str
    strength: int


def statements(unit: C.Unit) -> list[Statement]:
    out = []
    for s, e in unit.sentences:
        sent = unit.text[s - unit.start:e - unit.start]
        value = C.stated_value(sent)
        if not value:
            continue
        if "\\boxed" in sent or "\\fbox" in sent or (C.ANSWER_WORD.search(sent) and not sent.rstrip().endswith("?")):
            strength = 3
        elif C.CONCLUSIVE.search(sent):
            strength = 2
        else:
            strength = 1
        out.append(Statement(s, e, value, strength))
    return out


def cue_kind(unit: C.Unit) -> str | None:
    """How a unit opens: "alt" (a change of method or a restart, said decisively), "alt?" (the same, hedged:
    "perhaps I can use ..."), "check", "wait", or None."""
    head = unit.head
    m = C.ALT_METHOD.search(head)
    check = C.CHECK.search(head)
    if not m and not check:
        m = C.RESTART.search(head)
    if not m and not check and not re.search(r"alternatively,? if\b", head):
        m = C.ALTERNATIVELY.search(head)
    if m:
        # hedged when the sentence holding the cue is a question or says "perhaps", "maybe", "could"
        start = max(head.rfind(". ", 0, m.start()), head.rfind("\n", 0, m.start())) + 1
        end = min((i for i in (head.find(". ", m.end()), head.find("\n", m.end())) if i >= 0), default=len(head))
        return "alt?" if C.HEDGE.search(head[start:end + 1]) else "alt"
    if check or C.NEGATION.search(head):
        return "check"
    if C.WAIT.search(head):
        return "wait"
    return None


def _is_stuck(unit: C.Unit) -> bool:
    return bool(C.STUCK.search(unit.text[-300:].lower()))


class _Trace:
    """Per-trace working state: units, their statements and cues, computed once."""

    def __init__(self, text: str, gold: str | None):
        self.text = text
        self.units = C.split_units(text)
        self.stmts = [statements(u) for u in self.units]
        self.cues = [cue_kind(u) for u in self.units]
        self.gold = C.canon(gold)

    # ---- macro structure
    def conclusion_start(self, lo: int) -> int:
        """Index of the first conclusion unit (len(units) when there is none)."""
        i = len(self.units)
        while i > lo:
            u = self.units[i - 1]
            body = u.body
            if len(body) > CONCLUSION_MAX_CHARS:
                break
            lower = body.lower()
            bare = (body.startswith("**") and len(body) < 40) or (
                "\\boxed" in body and len(re.sub(r"\\boxed\{.*\}|\\\[|\\\]|\$|\s", "", body, flags=re.S)) < 12)
            answer = [s for s in self.stmts[i - 1] if s.strength >= 2]
            if answer and self.cues[i - 1] not in ("alt", "alt?", "wait") and not bare:
                return i - 1  # the answer statement closes the conclusion run
            if bare or (C.CLOSER.search(lower) and u.n_equals <= 1):
                i -= 1
                continue
            break
        return i if i < len(self.units) and i > lo else len(self.units)

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
            if C.PLAN.search(u.head) and not u.has_display_math and u.n_equals <= 2:
                pass  # planning, even with a little math ("First, I notice that ... \\(2r - 7 = 0\\)")
            elif u.computes or self.cues[i] in ("alt", "alt?") or C.WORK_START.search(u.head) or u.mathy:
                return i
            chars += u.end - u.start
            if chars > len(self.text) / 3:
                return lo
        return lo if hi - lo <= MAX_UNDERSTANDING_UNITS else min(hi, lo + MAX_UNDERSTANDING_UNITS)

    def final_value(self, concl: int) -> str:
        for i in range(len(self.units) - 1, concl - 1, -1):
            for s in reversed(self.stmts[i]):
                if s.strength >= 2:
                    return C.canon(s.value)
        return ""

    def answer_in(self, i: int, hi: int, targets: set[str]) -> Statement | None:
        """The candidate answer unit i states, if any: its last statement, when the reasoning turns right after it
        (next unit or rest of the paragraph opens with a cue, or the conclusion follows) and it is final-like
        (boxed, "the answer is", or a conclusive sentence giving the gold or the conclusion's value) -- or, for a
        wrong candidate, when it is conclusive and the turn is an explicit check or a change of method."""
        nxt = self.cues[i + 1] if i + 1 < hi else "end"
        for s in reversed(self.stmts[i]):
            rest = self.text[s.end:self.units[i].end].strip()
            turn = nxt if len(rest) < 40 else _cue_text(rest)
            if turn is None:
                return None
            if s.strength >= 3 or C.canon(s.value) in targets:
                return s
            if s.strength >= 2 and turn in ("alt", "alt?", "check", "end"):
                return s
            return None  # only the paragraph's last statement (before any turn) can be the candidate
        return None

    def first_answer(self, lo: int, hi: int, final: str) -> tuple[int, Statement] | None:
        """(unit index, statement) of the first candidate final answer in units[lo:hi]."""
        targets = {v for v in (self.gold, final) if v}
        for i in range(lo, hi):
            s = self.answer_in(i, hi, targets)
            if s is not None:
                return i, s
        return None


def _cue_text(text: str) -> str | None:
    return cue_kind(C.Unit(0, len(text), text))


def _approach_answer(tr: _Trace, lo: int, hi: int) -> str | None:
    """The answer an approach spanning units[lo:hi] reaches: its last conclusive statement, unless it ends stuck."""
    if hi - lo >= 1 and _is_stuck(tr.units[hi - 1]) and not any(s.strength >= 3 for s in tr.stmts[hi - 1]):
        return None
    for i in range(hi - 1, lo - 1, -1):
        for s in reversed(tr.stmts[i]):
            if s.strength >= 2:
                return s.value
    return None


def segment(text: str, gold: str | None = None, trace_id: str = "") -> Segmentation:
    """Segment one reasoning text (see the module docstring). `gold` only helps place the first answer."""
    tr = _Trace(text, gold)
    units, n = tr.units, len(tr.units)
    if n == 0:
        return Segmentation(trace_id, len(text), None, [])
    if n == 1:
        st = [s for s in tr.stmts[0] if s.strength >= 2]
        return Segmentation(trace_id, len(text), st[0].end if st else None,
                            [Segment("approach", 0, len(text), 1, st[-1].value if st else None)])
    rest_end = 1  # the restatement is the first unit
    concl = tr.conclusion_start(rest_end + 1)
    _, stated_at = C.final_statement(text)
    if stated_at is not None:  # the conclusion holds the paragraph the final answer is read from
        unit = bisect.bisect_right([u.start for u in units], stated_at) - 1
        if rest_end + 1 < unit < concl and n - unit <= C_MAX_UNITS:
            concl = unit
    final = tr.final_value(concl)
    work = tr.work_start(rest_end, concl)
    fa = tr.first_answer(work, concl, final)
    fae_unit = fa[0] if fa else concl - 1
    segs: list[Segment] = [Segment("restatement", 0, units[rest_end].start)]
    if work > rest_end:
        segs.append(Segment("understanding", units[rest_end].start, units[work].start))
    approach_no = 0

    def add_approach(lo: int, hi: int, answer: str | None = None) -> None:
        nonlocal approach_no
        approach_no += 1
        ans = answer if answer is not None else _approach_answer(tr, lo, hi)
        segs.append(Segment("approach", units[lo].start, units[hi - 1].end, approach_no, ans))

    # exploration: split at changes of method
    starts = [work]
    for i in range(work + 1, fae_unit + 1):
        cue = tr.cues[i]
        stuck = _is_stuck(units[i - 1]) or bool(C.STUCK.search(units[i].head))
        if cue == "alt" or (stuck and (cue == "alt?" or C.WEAK_NEW.search(units[i].head))):
            if starts[-1] == i - 1 and len(units[i - 1].body) < 150 and i - 1 > work:
                continue  # the previous paragraph only announced the switch ("Maybe there's a better way.")
            starts.append(i)
    bounds = [*starts, fae_unit + 1]
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
        if hi > lo:
            last = k == len(bounds) - 2
            add_approach(lo, hi, fa[1].value if (last and fa) else None)
    # verification: one check per cue paragraph; an explicit change of method that derives something is an approach
    targets = {v for v in (tr.gold, final) if v}
    i = fae_unit + 1
    while i < concl:
        alt = tr.cues[i] in ("alt", "alt?")
        j = i + 1
        if alt:
            # an alternative approach runs until it states a final-like answer, or until the next change of method
            while j < concl and tr.answer_in(j - 1, concl, targets) is None and not (
                    tr.cues[j] in ("alt", "alt?") and units[j].start - units[i].start >= 300):
                j += 1
        else:  # a check runs to the next cue
            while j < concl and tr.cues[j] is None:
                j += 1
        piece = units[i:j]
        chars = units[j - 1].end - units[i].start
        answered = any(s.strength >= 2 for s in tr.stmts[j - 1])
        derives = answered or (chars >= 200 and any(u.mathy for u in piece))
        # a hedged switch ("perhaps there's a simpler way") counts only when it gets to an answer
        if alt and derives and (tr.cues[i] == "alt" or answered):
            add_approach(i, j)
        else:
            answer = next((s.value for k in range(j - 1, i - 1, -1) for s in reversed(tr.stmts[k]) if s.strength >= 2),
                          None)
            if segs[-1].kind == "verification" and (chars < 120 or tr.cues[i] is None):
                segs[-1].end = units[j - 1].end
                segs[-1].answer = answer or segs[-1].answer
            else:
                segs.append(Segment("verification", units[i].start, units[j - 1].end, answer=answer))
        i = j
    if concl < n:
        segs.append(Segment("conclusion", units[concl].start, len(text)))
    segs[-1].end = len(text)
    fae = fa[1].end if fa else (units[concl].start if concl < n else None)
    if fae is not None:
        while fae > 0 and text[fae - 1].isspace():
            fae -= 1
    return Segmentation(trace_id, len(text), fae, segs)
