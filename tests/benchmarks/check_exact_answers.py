"""The exact number path (dlcot/answer_exact.py) agrees with math-verify on every pair it decides.

Collects every distinct (gold, candidate) pair that grading and enhancing the long-CoT traces in ../shared/data
produce -- the final answer (`cues.final_statement`), every approach's answer of the offline segmentation (enhance),
and the answer `find_answer` reads from the whole trace under both gradings (the eval path) -- as `verify_many`
compares them (`comparable`), then runs math-verify (10 s CPU budget, no shortcut) on each pair the exact path
decides and prints the count of pairs it covers and every disagreement. Exit status 1 on any disagreement.
Run: .venv/bin/python tests/benchmarks/check_exact_answers.py
"""
from __future__ import annotations

import sys
from pathlib import Path

from dlcot import answers
from dlcot.answer_exact import exact_verdict
from dlcot.answers import AnswerChecker, comparable, find_answer
from dlcot.enhance.cues import final_statement
from dlcot.enhance.segment import segment
from dlcot.records import Trace, read_records

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "longcot"


def pairs() -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for path in sorted(DATA.glob("*.jsonl")):
        for t in read_records(path, Trace):
            if not isinstance(t, Trace) or not t.reasoning.strip():
                continue
            found = [final_statement(t.reasoning)[0], *(find_answer(t.reasoning, g) for g in answers.GRADINGS)]
            cands = [f.value if isinstance(f, answers.Answer) else f for f in found]
            cands += [s.answer for s in segment(t.reasoning, t.gold_answer, t.id).segments if s.kind == "approach"]
            out |= {(comparable(t.gold_answer), comparable(c)) for c in cands if c}
    return out


def main() -> int:
    if not DATA.is_dir():
        print(f"check_exact_answers: skipped, {DATA} not found (needs ../shared/data)")
        return 0
    every = pairs()
    exact = {k: v for k in every if (v := exact_verdict(answers._canon(k[0]), answers._canon(k[1]))) is not None}
    with AnswerChecker(workers=2, timeout_s=10.0) as checker:
        mv = checker._run(sorted(exact))
    wrong = [(k, v, mv.get(k)) for k, v in sorted(exact.items()) if mv.get(k, (None, ""))[0] is not v]
    print(f"exact path: decides {len(exact)} of {len(every)} distinct pairs ({sum(exact.values())} match, "
          f"{len(exact) - sum(exact.values())} mismatch); disagreements with math-verify: {len(wrong)}")
    for k, v, m in wrong:
        print(f"  {k!r}: exact path {v}, math-verify {m}")
    bad = len(wrong)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
