"""What one paragraph (a `cues.Unit`) says, read once and only when the segmenter asks: the answer statements it
makes (`Statements`, read from its last sentence backwards) and how it opens (`cue_kind`: a change of method, a
check, a "wait"). segment.py builds the macro structure from these.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from dlcot.enhance import cues

T = TypeVar("T")


@dataclass(frozen=True)
class Statement:
    """A sentence stating a candidate value: strength 3 = boxed or "the answer is", 2 = conclusive ("So,",
    "Therefore"), 1 = a bare result line ("Area = 288 / 18 = 16")."""

    start: int
    end: int
    value: str
    strength: int


def statement(unit: cues.Unit, start: int, end: int) -> Statement | None:
    """The answer statement the sentence text[start:end] of `unit` makes, if it states a value."""
    sent = unit.text[start - unit.start:end - unit.start]
    value = cues.stated_value(sent)
    if not value:
        return None
    if "\\boxed" in sent or "\\fbox" in sent or (cues.ANSWER_WORD.search(sent) and not sent.rstrip().endswith("?")):
        strength = 3
    elif cues.CONCLUSIVE.search(sent):
        strength = 2
    else:
        strength = 1
    return Statement(start, end, value, strength)


class Statements:
    """A unit's answer statements, read from its last sentence backwards and only as far as a caller looks:
    the segmenter mostly wants the last one (or the last conclusive one), and reading a sentence for a value is
    the costliest step of segmentation."""

    def __init__(self, unit: cues.Unit):
        self.unit = unit
        self._next = len(unit.sentences) - 1  # the next sentence to read, going backwards
        self._read: list[Statement] = []  # the statements found so far, last first

    def from_last(self) -> Iterator[Statement]:
        """The statements, last first."""
        k = 0
        while True:
            while k < len(self._read):
                yield self._read[k]
                k += 1
            if not self._read_one():
                return

    def _read_one(self) -> bool:
        """Read one more sentence; True while there was one to read."""
        if self._next < 0:
            return False
        found = statement(self.unit, *self.unit.sentences[self._next])
        self._next -= 1
        if found is not None:
            self._read.append(found)
        return True

    def all(self) -> list[Statement]:
        """The statements in reading order."""
        return list(self.from_last())[::-1]


def cue_kind(unit: cues.Unit) -> str | None:
    """How a unit opens: "alt" (a change of method or a restart, said decisively), "alt?" (the same, hedged:
    "perhaps I can use ..."), "check", "wait", or None."""
    head = unit.head
    m = cues.ALT_METHOD.search(head)
    check = next((c for c in cues.CHECK.finditer(head) if not _solving_on(head, c)), None)
    if not m and not check:
        m = cues.RESTART.search(head)
    if not m and not check and not re.search(r"alternatively,? if\b", head):
        m = cues.ALTERNATIVELY.search(head)
    if m:
        # hedged when the sentence holding the cue is a question or says "perhaps", "maybe", "could"
        start = max(head.rfind(". ", 0, m.start()), head.rfind("\n", 0, m.start())) + 1
        end = min((i for i in (head.find(". ", m.end()), head.find("\n", m.end())) if i >= 0), default=len(head))
        return "alt?" if cues.HEDGE.search(head[start:end + 1]) else "alt"
    if check or cues.NEGATION.search(head):
        return "check"
    if cues.WAIT.search(head):
        return "wait"
    return None


_PLUG_BACK = re.compile(r"(?:plug|substitut)\w*\b")
_TO_SOLVE = re.compile(r"[^.\n]*?\bto (?:find|solve|get|determine|compute|obtain|calculate)\b")


def _solving_on(head: str, check: re.Match[str]) -> bool:
    """A "plug ... back" that serves the next step ("plug a back into equation (8) to find b") solves on; it
    checks nothing."""
    return bool(_PLUG_BACK.match(check.group())) and bool(_TO_SOLVE.match(head, check.end()))


_UNSET = object()


class PerUnit(Generic[T]):
    """`fn(unit)` for each unit, indexed like a list, each computed on first use and kept: segmentation reads the
    statements and cues of only some units (the tail, the exploration up to the first answer, each check's end),
    and reading a unit's sentences for values is the costliest step."""

    def __init__(self, units: list[cues.Unit], fn: Callable[[cues.Unit], T]):
        self._units = units
        self._fn = fn
        self._values: list[Any] = [_UNSET] * len(units)

    def __getitem__(self, i: int) -> T:
        value = self._values[i]
        if value is _UNSET:
            value = self._values[i] = self._fn(self._units[i])
        return value
