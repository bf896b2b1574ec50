"""`stats.json` of an enhance run, computed from the finished output files (so a resumed run gets the same).

Keys (docs/architecture.md §3 plus issue 3): n_input, n_kept, n_rejected, tokens_before, tokens_after, token_reduction
(1 − Σ after / Σ before over kept traces), median_token_reduction (per kept trace), answer_preserved (share of
kept traces whose enhanced text still ends in the gold answer through dlcot.answers), tokenizer,
reject_reasons (counts), token_share_before / token_share_after (per segment kind), cut_tokens_by_reason,
mean_approaches_before / mean_approaches_after (per kept trace), error_spans_marked (+ a note when the backend
cannot mark any), notes (kept_raw counts), repairs; with a judged backend `judge` (calls and tokens, in all and
per trace) and `judge_fallbacks` (by step and reason).
"""
from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcot.records import check_accounting


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


@dataclass
class Lengths:
    """Per-kept-trace token counts (two ints each: what the median and the length plot need)."""

    before: list[int] = field(default_factory=list)
    after: list[int] = field(default_factory=list)


def compute(out_dir: Path, *, n_input: int, tokenizer: str, policy: str, backend: str, marks_error_spans: bool
            ) -> tuple[dict[str, Any], Lengths]:
    """Stats of the finished outputs; `n_input` is the count of input records read (`records.Counted`), which
    the outputs must account for."""
    lengths = Lengths()
    kinds_before: Counter = Counter()
    kinds_after: Counter = Counter()
    cut_by_reason: Counter = Counter()
    notes: Counter = Counter()
    approaches_before = approaches_after = preserved = error_spans = repairs = n_kept = 0
    reductions: list[float] = []
    for row in _rows(out_dir / "enhanced.jsonl"):
        lin = row["lineage"]
        tok = lin["tokens"]
        n_kept += 1
        lengths.before.append(tok["before"])
        lengths.after.append(tok["after"])
        if tok["before"]:
            reductions.append(1 - tok["after"] / tok["before"])
        kinds_before.update(tok["by_kind_before"])
        kinds_after.update(tok["by_kind_after"])
        cut_by_reason.update(tok["cut_by_reason"])
        notes.update(lin.get("notes", []))
        segs = lin["segments"]
        approaches_before += len({s["approach"] for s in segs if s["kind"] == "approach"})
        approaches_after += len({s["approach"] for s in segs if s["kind"] == "approach" and s["kept"]})
        preserved += bool(lin["answer_preserved"])
        error_spans += lin.get("error_spans_marked", 0)
        repairs += len(lin.get("repairs", []))
    reasons = Counter(r["reason"] for r in _rows(out_dir / "rejected.jsonl"))
    n_rejected = sum(reasons.values())
    check_accounting(out_dir, n_input, n_kept, n_rejected)
    before, after = sum(lengths.before), sum(lengths.after)

    def shares(c: Counter) -> dict[str, float]:
        total = sum(c.values())
        return {k: round(v / total, 4) for k, v in sorted(c.items())} if total else {}

    stats: dict[str, Any] = {
        "n_input": n_input, "n_kept": n_kept, "n_rejected": n_rejected,
        "tokens_before": before, "tokens_after": after,
        "token_reduction": round(1 - after / before, 4) if before else 0.0,
        "median_token_reduction": round(statistics.median(reductions), 4) if reductions else 0.0,
        "answer_preserved": round(preserved / n_kept, 4) if n_kept else None,
        "tokenizer": tokenizer, "policy": policy, "backend": backend,
        "reject_reasons": dict(sorted(reasons.items())),
        "token_share_before": shares(kinds_before), "token_share_after": shares(kinds_after),
        "tokens_by_kind_before": dict(sorted(kinds_before.items())),
        "tokens_by_kind_after": dict(sorted(kinds_after.items())),
        "cut_tokens_by_reason": dict(sorted(cut_by_reason.items())),
        "mean_approaches_before": round(approaches_before / n_kept, 3) if n_kept else 0.0,
        "mean_approaches_after": round(approaches_after / n_kept, 3) if n_kept else 0.0,
        "error_spans_marked": error_spans,
        "notes": dict(sorted(notes.items())), "repairs": repairs,
    }
    judged = judge_stats(out_dir)
    if judged["judge"]["traces"]:  # a judged backend or enhance.rewrite=llm
        stats.update(judged)
    if not marks_error_spans:
        stats["error_spans_note"] = (f"the {backend} backend marks no error spans; cut_error_spans has nothing to cut")
    return stats, lengths


def judge_stats(out_dir: Path) -> dict[str, Any]:
    """What the judge spent (answers used, cached or not, so a resumed run reports the same) and where its
    answers failed validation twice and the offline result was used: `judge_fallbacks` {step: {reason: n}}."""
    calls = prompt = completion = n = 0
    fallbacks: dict[str, Counter] = {}
    rows = itertools.chain((r.get("lineage", {}).get("judge") for r in _rows(out_dir / "enhanced.jsonl")),
                           (r.get("judge") for r in _rows(out_dir / "rejected.jsonl")))
    for j in rows:
        if j is None:
            continue
        n += 1
        calls += j["calls"]
        prompt += j["prompt_tokens"]
        completion += j["completion_tokens"]
        for f in j["fallbacks"]:
            fallbacks.setdefault(f["step"], Counter())[f["reason"]] += 1
    per = (lambda x: round(x / n, 2)) if n else (lambda x: 0.0)
    return {"judge": {"traces": n, "calls": calls, "prompt_tokens": prompt, "completion_tokens": completion,
                      "calls_per_trace": per(calls), "prompt_tokens_per_trace": per(prompt),
                      "completion_tokens_per_trace": per(completion)},
            "judge_fallbacks": {k: dict(sorted(v.items())) for k, v in sorted(fallbacks.items())}}
