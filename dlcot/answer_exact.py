"""Exact verdicts for pairs of plain numbers, decided without math-verify (`dlcot.answers` asks here first).

Both sides must be, as a whole, one of: an integer (`42`, `-7`, `10,000`, `10,\\!080`: thin-space thousands as
MATH writes them), a decimal (`5.5`, `.5`, `1,000.5`), a fraction `a/b` or `\\frac{a}{b}` (`\\dfrac`, `\\tfrac`),
with an optional minus sign; anything else (a variable, a unit, `\\frac12`, a leading zero, a mixed number, more
than 15 digits) is left to math-verify. This is the one number shortcut; `answers._quick` passes its `_canon`
forms (no spaces, no `$`, no final `.`). Values are compared as `fractions.Fraction`, so the verdict is
deterministic and costs no worker process and no CPU budget (no `undecided` under load).

It must agree with math-verify wherever it decides (`tests/benchmarks/check_exact_answers.py` checks every such
pair of the Sky-T1 traces and the eval path, `tests/unit/test_answer_exact.py` the edge cases): equal values are
a match; unequal ones a mismatch only when they are far apart, because math-verify compares a decimal rounded to
6 places (`0.333333` matches `1/3`) and evaluates other numbers to 15 digits: a near miss is left to it.
"""
from __future__ import annotations

import re
from fractions import Fraction

_INT = r"(?:0|[1-9]\d*|[1-9]\d{0,2}(?:,(?:\\!\s?)?\d{3})+)"
_VALUE = re.compile(
    r"\s*(?P<neg>-)?\s*(?:"
    rf"(?P<int>{_INT})"
    r"|(?P<dec>(?:0|[1-9]\d*|[1-9]\d{0,2}(?:,\d{3})+)?\.\d+)"
    r"|\\[dt]?frac\{\s*(?P<tnum>0|[1-9]\d*)\s*\}\{\s*(?P<tden>[1-9]\d*)\s*\}"
    r"|(?P<snum>0|[1-9]\d*)\s*/\s*(?P<sden>[1-9]\d*)"
    r")\s*")
_MAX_DIGITS = 15
_FAR = Fraction(1, 10**5)  # unequal values closer than this (relative to the larger, at least 1) are not decided


def exact_value(s: str) -> tuple[Fraction, bool] | None:
    """(value, written as a decimal) of a plain number as a whole string (`$` around it allowed), or None."""
    m = _VALUE.fullmatch(s.strip().strip("$"))
    if m is None or sum(c.isdigit() for c in m.group(0)) > _MAX_DIGITS:
        return None
    if m["int"] is not None:
        value = Fraction(int(re.sub(r"\D", "", m["int"])))
    elif m["dec"] is not None:
        value = Fraction(m["dec"].replace(",", ""))
    elif m["tnum"] is not None:
        value = Fraction(int(m["tnum"]), int(m["tden"]))
    else:
        value = Fraction(int(m["snum"]), int(m["sden"]))
    return (-value if m["neg"] else value), m["dec"] is not None


def exact_verdict(gold: str, pred: str) -> bool | None:
    """True (equal) / False (far apart) when both sides are plain numbers; None: math-verify decides."""
    g, p = exact_value(gold), exact_value(pred)
    if g is None or p is None:
        return None
    if g[0] == p[0]:
        return True
    if abs(g[0] - p[0]) > _FAR * max(1, abs(g[0]), abs(p[0])):
        return False
    return None
