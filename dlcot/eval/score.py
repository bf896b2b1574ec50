"""Prediction rows: one per (problem, sample), judged by `dlcot.answers` only (extraction and math-verify)."""
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
          breakdown: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows `{uid, id, sample, gold, response, extracted, correct, reason, n_tokens, finish_reason, ...}` for
    every completion that exists (replay's "missing" ones are the caller's rejects)."""
    items = [(p, j, c) for p, cs in zip(problems, completions, strict=True) for j, c in enumerate(cs)
             if c.finish_reason != "missing"]
    verdicts = checker.check_many([(p.gold_answer, c.text) for p, _, c in items])
    return [{"uid": uid(p.id, j), "id": p.id, "sample": j, "gold": p.gold_answer, "response": c.text,
             "extracted": v.extracted, "correct": v.correct, "reason": v.reason, "n_tokens": c.n_tokens,
             "finish_reason": c.finish_reason, **{f: p.extra[f] for f in breakdown if f in p.extra}}
            for (p, j, c), v in zip(items, verdicts, strict=True)]
