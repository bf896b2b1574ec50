"""Prediction rows: one per (problem, sample), judged by `dlcot.answers` only (extraction and math-verify).

Every row carries both gradings (the field's convention and strict, see `dlcot.answers`), how the answer was
stated (`answer_kind`: boxed / marker / prose, None when answerless), and `correct`: the verdict under the
run's `eval.grading`, after `eval.truncated` (what a length-truncated output gets):
- `grade` (default, as lighteval / open-r1 and the Qwen2.5-Math evaluator do): the text it did produce is graded
  like any other, so a truncated output that already stated its answer counts;
- `wrong`: a truncated output is wrong whatever it stated (an "answers within the budget" accuracy).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dlcot.answers import AnswerChecker
from dlcot.engines.base import Completion
from dlcot.records import Problem


def uid(problem_id: str, sample: int) -> str:
    """The resume key of one sample (predictions.jsonl holds n lines per problem id)."""
    return f"{problem_id}#{sample}"


def score(problems: Sequence[Problem], completions: Sequence[Sequence[Completion]], checker: AnswerChecker,
          breakdown: Sequence[str] = (), *, grading: str = "convention", truncated: str = "grade"
          ) -> list[dict[str, Any]]:
    """Rows `{uid, id, sample, gold, response, extracted, answer_kind, correct, correct_convention,
    correct_strict, reason, n_tokens, finish_reason, ...}` for every completion that exists (replay's
    "missing" ones are the caller's rejects)."""
    items = [(p, j, c) for p, cs in zip(problems, completions, strict=True) for j, c in enumerate(cs)
             if c.finish_reason != "missing"]
    pairs = [(p.gold_answer, c.text) for p, _, c in items]
    conv = checker.check_many(pairs, "convention")
    strict = checker.check_many(pairs, "strict")
    rows = []
    for (p, j, c), v, s in zip(items, conv, strict, strict=True):
        counts = not (truncated == "wrong" and c.finish_reason == "length")
        chosen = v if grading == "convention" else s
        rows.append({"uid": uid(p.id, j), "id": p.id, "sample": j, "gold": p.gold_answer, "response": c.text,
                     "extracted": chosen.extracted, "answer_kind": v.kind, "correct": chosen.correct and counts,
                     "correct_convention": v.correct and counts, "correct_strict": s.correct and counts,
                     "reason": chosen.reason, "n_tokens": c.n_tokens, "finish_reason": c.finish_reason,
                     **{f: p.extra[f] for f in breakdown if f in p.extra}})
    return rows
