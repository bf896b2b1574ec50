"""Outcomes of approaches, the answer a reasoning ends with, and the backend interface.

An approach's outcome is *correct* / *incorrect* when it states an answer that `dlcot.answers` judges equal /
unequal to gold, *incomplete* when it states none (abandoned, or cut off), and *unverified* when math-verify
timed out or could not decide (a verdict reason in UNDECIDED): that is not evidence of a wrong answer, so it is
never cut as one and never ends the trunk. Verification spans keep the answer
they confirm and no outcome (docs/architecture.md §5).

`Backend` is the stage interface: `segment` (structure) and `label` (outcomes, the final answer, and error spans
where a backend can judge them). `OfflineBackend` is deterministic and needs no model; it marks no error spans
(`marks_error_spans = False`, reported in stats as `error_spans_marked: 0` with a note). The LLM-judged backends
(llm.py) implement the same two methods, plus `clusters`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from dlcot.answers import AnswerChecker, Verdict
from dlcot.enhance.cues import final_statement
from dlcot.enhance.segment import segment as offline_segment
from dlcot.records import Segment, Segmentation, Trace


def final_answer_of(text: str) -> str | None:
    """The answer a reasoning text ends with, or None (see `cues.final_statement`)."""
    return final_statement(text)[0]


@dataclass
class Labeled:
    """A segmentation with outcomes, the verdict on the trace's final answer, and error spans (char ranges
    judged to be wrong intermediate steps; only backends that can judge them fill this)."""

    segmentation: Segmentation
    final_answer: str | None = None  # the answer the reasoning ends with, as written
    final_verdict: Verdict | None = None
    gold_parsable: bool = True
    error_spans: list[tuple[int, int]] = field(default_factory=list)

    @property
    def first_correct(self) -> int | None:
        """Approach number of the first correct approach (the end of DLCoT's trunk), or None."""
        for s in self.segmentation.segments:
            if s.kind == "approach" and s.outcome == "correct":
                return s.approach
        return None


@runtime_checkable
class Backend(Protocol):
    """What the enhance pipeline needs from a backend; the offline one and the LLM-judged one implement it."""

    name: str
    marks_error_spans: bool

    def segment(self, trace: Trace) -> Segmentation: ...

    def label(self, trace: Trace, segmentation: Segmentation) -> Labeled: ...


UNDECIDED = ("timeout", "undecided")  # verdict reasons math-verify gives when it cannot decide (dlcot.answers)


def outcome_of(v: Verdict) -> str:
    """correct | incorrect | incomplete (no answer) | unverified (math-verify could not decide: not wrong)."""
    if v.reason == "no_answer":
        return "incomplete"
    if v.reason in UNDECIDED:
        return "unverified"
    return "correct" if v.correct else "incorrect"


def label(seg: Segmentation, gold: str, final_answer: str | None, checker: AnswerChecker) -> Labeled:
    """Outcomes for every approach of `seg` (a new Segmentation; `seg` is not modified) and the final verdict,
    checked against `gold` in one batch through `checker`."""
    approaches = [s for s in seg.segments if s.kind == "approach"]
    verdicts = checker.check_answers([(gold, s.answer) for s in approaches] + [(gold, final_answer)])
    gold_parsable = not any(v.reason == "unparsable_gold" for v in verdicts)
    outcomes = iter(verdicts)
    segs: list[Segment] = []
    for s in seg.segments:
        if s.kind == "approach":
            v = next(outcomes)
            s = replace(s, outcome=outcome_of(v))
        segs.append(s)
    return Labeled(replace(seg, segments=segs), final_answer, verdicts[-1], gold_parsable)


class OfflineBackend:
    """Rule-based segmentation + answer checking; deterministic, no model. See segment.py and this module."""

    name = "offline"
    marks_error_spans = False

    def __init__(self, checker: AnswerChecker):
        self.checker = checker

    def segment(self, trace: Trace) -> Segmentation:
        return offline_segment(trace.reasoning, trace.gold_answer, trace.id)

    def label(self, trace: Trace, segmentation: Segmentation) -> Labeled:
        return label(segmentation, trace.gold_answer, final_answer_of(trace.reasoning), self.checker)
