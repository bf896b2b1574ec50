"""Arithmetic over a synthetic problem's steps and the synthetic teacher's three solution methods.

Split from `synthetic.py` so the teacher there reads as the story of a trace. A method renders a list of events
(paragraph, indices of the steps it computes); the equations come only from here, so one method always writes the
same equations for the same numbers (restarts and same-method re-checks share math tokens) while "forward" (a line
per step), "expression" (one expression reduced round by round) and "equation" (unknown x, undo the events in
reverse) look different. A slip is an (step, delta) pair that propagates through the step graph.
"""
from __future__ import annotations

import random
from fractions import Fraction

from dlcot.data import synthetic_text as phrases
from dlcot.data.synthetic_problems import APPLY, Step, SyntheticProblem

METHODS = ("forward", "expression", "equation")
INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_SLIP_DELTAS = (1, -1, 2, -2, 10, -10, 3, -3)

Ref = tuple[str, int]  # ("n", number written in the text) or ("s", index of an earlier step)
Expr = str | tuple  # a formatted leaf, or (op, left Expr, right Expr)


def step_refs(steps: tuple[Step, ...]) -> list[tuple[Ref, Ref]]:
    """Which earlier step (if any) feeds each operand, so a slip can propagate and a method can re-render."""
    out: list[tuple[Ref, Ref]] = []
    running: int | None = None
    pending: int | None = None
    for i, s in enumerate(steps):
        if s.kind in ("start", "quantity"):
            out.append((("n", s.left), ("n", s.right)))
            running, pending = (i, pending) if s.kind == "start" else (running, i)
        else:
            left: Ref = ("s", running) if running is not None else ("n", s.left)
            right: Ref = ("s", pending) if pending is not None else ("n", s.right)
            out.append((left, right))
            running, pending = i, None
    return out


def _fmt(e: Expr) -> str:
    if isinstance(e, str):
        return e
    op, left, right = e
    ls, rs = _fmt(left), _fmt(right)
    if not isinstance(left, str) and _PREC[left[0]] < _PREC[op]:
        ls = f"({ls})"
    if not isinstance(right, str) and (_PREC[right[0]] < _PREC[op] or (_PREC[right[0]] == _PREC[op] and op in "-/")):
        rs = f"({rs})"
    return f"{ls} {op} {rs}"


def num(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{float(v):g}"


class Solver:
    """A problem's steps as a graph: evaluation (optionally with a slip) and the three methods' renderings.
    A rendering is a list of (paragraph, step indices it computes) events."""

    def __init__(self, pb: SyntheticProblem, rng: random.Random) -> None:
        self.pb, self.rng, self.refs = pb, rng, step_refs(pb.steps)
        self.true = self.evaluate(None)
        self.combine = [i for i, s in enumerate(pb.steps) if s.kind == "combine"]
        self.methods = METHODS if self.combine else METHODS[:2]

    def evaluate(self, slip: tuple[int, int] | None) -> list[Fraction]:
        vals: list[Fraction] = []
        for i, (s, refs) in enumerate(zip(self.pb.steps, self.refs, strict=True)):
            x, y = (vals[r[1]] if r[0] == "s" else Fraction(r[1]) for r in refs)
            vals.append(APPLY[s.op](x, y) + (slip[1] if slip and slip[0] == i else 0))
        return vals

    def choose_slip(self) -> tuple[int, list[Fraction]]:
        """An arithmetic slip that keeps every value a positive integer (a plausible wrong number, not 27/4)."""
        order = self.rng.sample(range(len(self.pb.steps)), k=len(self.pb.steps))
        for i in order:
            for delta in self.rng.sample(_SLIP_DELTAS, k=len(_SLIP_DELTAS)):
                vals = self.evaluate((i, delta))
                if all(v.denominator == 1 and v > 0 for v in vals) and vals[-1] != self.true[-1]:
                    return i, vals
        last = len(self.pb.steps) - 1
        return last, self.evaluate((last, 1))

    def eq(self, i: int, vals: list[Fraction], with_result: bool = True) -> str:
        x, y = (num(vals[r[1]]) if r[0] == "s" else str(r[1]) for r in self.refs[i])
        return f"{x} {self.pb.steps[i].op} {y}" + (f" = {num(vals[i])}" if with_result else "")

    def render(self, method: str, vals: list[Fraction]) -> list[tuple[str, tuple[int, ...]]]:
        return getattr(self, f"_{method}")(vals)

    def _forward(self, vals: list[Fraction]) -> list[tuple[str, tuple[int, ...]]]:
        n, events = len(vals), []
        for i, s in enumerate(self.pb.steps):
            table = phrases.FORWARD_FIRST if i == 0 else phrases.FORWARD_LAST if i == n - 1 else phrases.FORWARD_MID
            events.append((self.rng.choice(table).format(label=s.label, eq=self.eq(i, vals)), (i,)))
        return events

    def _tree(self, i: int, vals: list[Fraction], done: set[int]) -> Expr:
        if i in done:
            return num(vals[i])
        x, y = (self._tree(r[1], vals, done) if r[0] == "s" else str(r[1]) for r in self.refs[i])
        return (self.pb.steps[i].op, x, y)

    def _expression(self, vals: list[Fraction]) -> list[tuple[str, tuple[int, ...]]]:
        root, done = len(vals) - 1, set()
        prev = _fmt(self._tree(root, vals, done))
        events = [(self.rng.choice(phrases.EXPR_SETUP).format(expr=prev), ())]
        while root not in done:
            ready = [i for i, refs in enumerate(self.refs) if i not in done
                     and all(r[0] == "n" or r[1] in done for r in refs)]
            done.update(ready)
            cur = _fmt(self._tree(root, vals, done))
            events.append((self.rng.choice(phrases.EXPR_ROUND).format(prev=prev, cur=cur), tuple(ready)))
            prev = cur
        return events

    def _equation(self, vals: list[Fraction]) -> list[tuple[str, tuple[int, ...]]]:
        quantities = tuple(i for i, s in enumerate(self.pb.steps) if s.kind != "combine")
        events = []
        if quantities:
            eqs = ", ".join(self.eq(i, vals) for i in quantities)
            events.append((self.rng.choice(phrases.EQ_QUANTITIES).format(eqs=eqs), quantities))
        lhs: Expr = "x"
        for i in reversed(self.combine):
            ref = self.refs[i][1]
            operand = num(vals[ref[1]]) if ref[0] == "s" else str(ref[1])
            lhs = (INVERSE[self.pb.steps[i].op], lhs, operand)
        start = self.refs[self.combine[0]][0]
        start_value = num(vals[start[1]]) if start[0] == "s" else str(start[1])
        setup = self.rng.choice(phrases.EQ_SETUP).format(target=self.pb.target, eq=f"{_fmt(lhs)} = {start_value}")
        events.append((setup, ()))
        for i in self.combine:
            lhs = lhs[1]
            events.append((self.rng.choice(phrases.EQ_PEEL).format(lhs=_fmt(lhs), rhs=self.eq(i, vals)), (i,)))
        return events
