"""Segmentation quality against gold (the method's own yardstick; issue 3 "Quality").

All scores compare one predicted and one gold `Segmentation` of the same `reasoning` text:
- `kind_agreement`: share of characters whose predicted kind equals the gold kind.
- approach starts: the offset where each approach number first appears. A predicted start matches a gold start
  when their *lines* differ by at most `tolerance` (1), one-to-one, nearest first. Lines are the text's
  non-blank lines, so "±1 line" means "the same or an adjacent paragraph line", whatever the blank lines.
  Precision, recall and F1 are micro-averaged over traces (summed true/false positives).
- `first_answer_hit`: the predicted `first_answer_end` lies within ±1 line of the gold one (None never hits).
- `approach_count_exact`: the number of approaches is the same.
- `outcome_accuracy`: for each gold approach, the predicted approach overlapping it most (in characters) has
  the same outcome; a gold approach no predicted approach overlaps counts as wrong.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from dlcot.records import Segmentation


class Lines:
    """Maps character offsets to non-blank line numbers of a text."""

    def __init__(self, text: str):
        self.starts: list[int] = []
        pos = 0
        for line in text.split("\n"):
            if line.strip():
                self.starts.append(pos)
            pos += len(line) + 1

    def of(self, offset: int) -> int:
        """Index of the non-blank line holding `offset` (an offset in a blank run belongs to the line before)."""
        return max(0, bisect.bisect_right(self.starts, offset) - 1)

    def of_end(self, end: int) -> int:
        """Line of an exclusive end offset (the last character before it)."""
        return self.of(max(0, end - 1))


def approach_starts(seg: Segmentation) -> list[int]:
    seen: dict[int, int] = {}
    for s in seg.segments:
        if s.kind == "approach" and s.approach is not None and s.approach not in seen:
            seen[s.approach] = s.start
    return sorted(seen.values())


def _match(pred: list[int], gold: list[int], tol: int) -> int:
    pairs = sorted((abs(p - g), i, j) for i, p in enumerate(pred) for j, g in enumerate(gold) if abs(p - g) <= tol)
    used_p, used_g, hits = set(), set(), 0
    for _, i, j in pairs:
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            hits += 1
    return hits


def _kinds(seg: Segmentation, n: int) -> list[tuple[int, int, str]]:
    return [(max(0, s.start), min(n, s.end), s.kind) for s in seg.segments if s.end > s.start]


def kind_agreement_chars(pred: Segmentation, gold: Segmentation, n: int) -> int:
    """Characters on which the two segmentations give the same kind (both span lists sorted, contiguous)."""
    a, b = _kinds(pred, n), _kinds(gold, n)
    i = j = agree = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo and a[i][2] == b[j][2]:
            agree += hi - lo
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return agree


def outcome_hits(pred: Segmentation, gold: Segmentation) -> tuple[int, int]:
    """(gold approaches whose best-overlapping predicted approach has the same outcome, gold approaches)."""
    by_num_pred: dict[int, list] = {}
    for s in pred.segments:
        if s.kind == "approach" and s.approach is not None:
            by_num_pred.setdefault(s.approach, []).append(s)
    by_num_gold: dict[int, list] = {}
    for s in gold.segments:
        if s.kind == "approach" and s.approach is not None:
            by_num_gold.setdefault(s.approach, []).append(s)
    hits = 0
    for gsegs in by_num_gold.values():
        best, best_ov = None, 0
        for psegs in by_num_pred.values():
            ov = sum(max(0, min(g.end, p.end) - max(g.start, p.start)) for g in gsegs for p in psegs)
            if ov > best_ov:
                best, best_ov = psegs, ov
        if best is not None and best[0].outcome == gsegs[0].outcome:
            hits += 1
    return hits, len(by_num_gold)


@dataclass
class QualityReport:
    """Summed counts over traces; the properties are the scores."""

    n_traces: int = 0
    n_chars: int = 0
    kind_agree: int = 0
    start_tp: int = 0
    n_pred_starts: int = 0
    n_gold_starts: int = 0
    first_answer_hits: int = 0
    count_exact: int = 0
    outcome_hit: int = 0
    n_gold_approaches: int = 0
    per_trace: list[dict] = field(default_factory=list)

    def add(self, text: str, pred: Segmentation, gold: Segmentation, tolerance: int = 1) -> None:
        lines = Lines(text)
        n = len(text)
        ps = [lines.of(s) for s in approach_starts(pred)]
        gs = [lines.of(s) for s in approach_starts(gold)]
        tp = _match(ps, gs, tolerance)
        first_answer_hit = (pred.first_answer_end is not None and gold.first_answer_end is not None
               and abs(lines.of_end(pred.first_answer_end) - lines.of_end(gold.first_answer_end)) <= tolerance)
        agree = kind_agreement_chars(pred, gold, n)
        oh, on = outcome_hits(pred, gold)
        self.n_traces += 1
        self.n_chars += n
        self.kind_agree += agree
        self.start_tp += tp
        self.n_pred_starts += len(ps)
        self.n_gold_starts += len(gs)
        self.first_answer_hits += int(first_answer_hit)
        self.count_exact += int(len(ps) == len(gs))
        self.outcome_hit += oh
        self.n_gold_approaches += on
        self.per_trace.append({"id": gold.id, "kind_agreement": agree / max(1, n), "start_tp": tp,
                               "pred_starts": len(ps), "gold_starts": len(gs), "first_answer_hit": first_answer_hit,
                               "outcome_hits": oh, "gold_approaches": on})

    @property
    def kind_agreement(self) -> float:
        return self.kind_agree / max(1, self.n_chars)

    @property
    def start_precision(self) -> float:
        return self.start_tp / max(1, self.n_pred_starts)

    @property
    def start_recall(self) -> float:
        return self.start_tp / max(1, self.n_gold_starts)

    @property
    def start_f1(self) -> float:
        p, r = self.start_precision, self.start_recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def first_answer_accuracy(self) -> float:
        return self.first_answer_hits / max(1, self.n_traces)

    @property
    def approach_count_exact(self) -> float:
        return self.count_exact / max(1, self.n_traces)

    @property
    def outcome_accuracy(self) -> float:
        return self.outcome_hit / max(1, self.n_gold_approaches)

    def summary(self) -> dict[str, float]:
        return {"n_traces": self.n_traces, "kind_agreement": round(self.kind_agreement, 4),
                "approach_start_precision": round(self.start_precision, 4),
                "approach_start_recall": round(self.start_recall, 4), "approach_start_f1": round(self.start_f1, 4),
                "first_answer_within_1_line": round(self.first_answer_accuracy, 4),
                "approach_count_exact": round(self.approach_count_exact, 4),
                "outcome_accuracy": round(self.outcome_accuracy, 4)}


def score(pairs: Iterable[tuple[str, Segmentation, Segmentation]], tolerance: int = 1) -> QualityReport:
    """Score (text, predicted, gold) triples."""
    rep = QualityReport()
    for text, pred, gold in pairs:
        rep.add(text, pred, gold, tolerance)
    return rep
