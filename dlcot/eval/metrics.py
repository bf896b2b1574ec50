"""Metrics over prediction rows (pure functions; hand-checked in tests/unit/test_eval_metrics.py).

accuracy is the mean over all samples (= pass@1 averaged over problems when every problem has n samples);
pass@k is the unbiased estimator of Chen et al. 2021, 1 - C(n-c, k) / C(n, k), averaged over problems; maj@k
votes over the first k samples' extracted answers (answerless samples do not vote; ties go to the answer seen
first). Token figures count response tokens with the engine's tokenizer. An answerless response states no
extractable final answer (Marco-o1 v2's symptom of a student that never stops thinking); a truncated one hit
max_new_tokens (`truncated_rate`). `accuracy` follows `eval.grading`; `accuracy_convention` and `accuracy_strict`
are both always reported, with `unmarked_rate` (answered only in prose, what the two gradings disagree on) and
`undecided_rate` (math-verify could not decide within its CPU budget; counted wrong, never a label).
"""
from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from math import comb
from typing import Any


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_correct(samples: Sequence[dict[str, Any]]) -> bool:
    """Whether the most frequent extracted answer among `samples` is a correct one."""
    votes: Counter[str] = Counter()
    verdict: dict[str, bool] = {}
    for row in samples:
        if row["extracted"] is None:
            continue
        key = re.sub(r"\s+", "", row["extracted"])
        votes[key] += 1
        verdict.setdefault(key, bool(row["correct"]))
    if not votes:
        return False
    best = max(votes.values())
    return verdict[next(k for k in votes if votes[k] == best)]  # Counter keeps first-seen order


def marker_counts(text: str, markers: Sequence[str]) -> dict[str, int]:
    """Case-insensitive whole-word counts of overthinking markers ("wait", "alternatively", ...)."""
    return {m: len(re.findall(rf"(?<![\w-]){re.escape(m)}(?![\w-])", text, re.IGNORECASE)) for m in markers}


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    tokens = [r["n_tokens"] for r in rows]
    n_correct = sum(bool(r["correct"]) for r in rows)
    correct_tokens = [r["n_tokens"] for r in rows if r["correct"]]
    wrong_tokens = [r["n_tokens"] for r in rows if not r["correct"]]
    return {
        "n_responses": len(rows),
        "accuracy": n_correct / len(rows),
        "mean_tokens": statistics.fmean(tokens),
        "median_tokens": statistics.median(tokens),
        "mean_tokens_correct": statistics.fmean(correct_tokens) if correct_tokens else None,
        "mean_tokens_incorrect": statistics.fmean(wrong_tokens) if wrong_tokens else None,
        "tokens_per_correct": sum(tokens) / n_correct if n_correct else None,
        "accuracy_convention": sum(bool(r.get("correct_convention")) for r in rows) / len(rows),
        "accuracy_strict": sum(bool(r.get("correct_strict")) for r in rows) / len(rows),
        "answerless_rate": sum(r.get("answer_kind") is None and r["extracted"] is None for r in rows) / len(rows),
        "unmarked_rate": sum(r.get("answer_kind") == "prose" for r in rows) / len(rows),
        "truncated_rate": sum(r["finish_reason"] == "length" for r in rows) / len(rows),
        "undecided_rate": sum(r.get("reason") == "undecided" for r in rows) / len(rows),
    }


def compute_metrics(rows: Iterable[dict[str, Any]], *, n: int, ks: Sequence[int], markers: Sequence[str] = (),
                    breakdown: Sequence[str] = ()) -> dict[str, Any]:
    """All eval metrics for rows of problems that each have samples 0..n-1 (the caller filters)."""
    rows = list(rows)
    if not rows:
        raise ValueError("compute_metrics: no prediction rows")
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_problem[r["id"]].append(r)
    for samples in by_problem.values():
        samples.sort(key=lambda r: r["sample"])
    sizes = {len(s) for s in by_problem.values()}
    if sizes != {n}:
        raise ValueError(f"compute_metrics: every problem needs {n} samples, found sample counts {sorted(sizes)}")
    ks_ok = sorted({k for k in ks if 1 <= k <= n})
    out: dict[str, Any] = {"n": len(by_problem), "n_samples": n, **_summary(rows)}
    out["pass_at_k"] = {str(k): statistics.fmean(pass_at_k(n, sum(bool(r["correct"]) for r in s), k)
                                                  for s in by_problem.values()) for k in ks_ok}
    out["maj_at_k"] = {str(k): statistics.fmean(majority_correct(s[:k]) for s in by_problem.values())
                       for k in ks_ok}
    out["k_skipped"] = sorted({k for k in ks if k not in ks_ok})  # k > n cannot be estimated
    counts = [marker_counts(r["response"], markers) for r in rows]
    out["markers_per_response"] = {m: statistics.fmean(c[m] for c in counts) for m in markers}
    out["breakdown"] = {}
    for fld in breakdown:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if fld in r:
                groups[str(r[fld])].append(r)
        if groups:
            out["breakdown"][fld] = {v: {"n": len({r["id"] for r in g}), **_summary(g)}
                                     for v, g in sorted(groups.items())}
    return out
