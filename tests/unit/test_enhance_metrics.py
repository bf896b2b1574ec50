"""Segmentation quality metrics on small cases computed by hand."""
from __future__ import annotations

import pytest

from dlcot.records import Segment, Segmentation
from tests.benchmarks.segmentation_metrics import Lines, score

TEXT = "R line\n\nA1 line\nA1 more\n\nA2 line\n\nV line\n\nC line"
#       0         8        16       25       33     40


def seg(*spans, first_answer_end=None):
    return Segmentation("t", len(TEXT), first_answer_end, [Segment(*s) for s in spans])


GOLD = seg(("restatement", 0, 8), ("approach", 8, 25, 1, "1", "incorrect"), ("approach", 25, 34, 2, "2", "correct"),
           ("verification", 34, 42), ("conclusion", 42, len(TEXT)), first_answer_end=32)


def test_lines_skip_blank_lines():
    lines = Lines(TEXT)
    assert [lines.of(o) for o in (0, 8, 16, 25, 34, 42)] == [0, 1, 2, 3, 4, 5]
    assert lines.of(7) == 0  # an offset in a blank run belongs to the line before


def test_perfect_prediction_scores_one():
    rep = score([(TEXT, GOLD, GOLD)])
    assert rep.summary() == {"n_traces": 1, "kind_agreement": 1.0, "approach_start_precision": 1.0,
                             "approach_start_recall": 1.0, "approach_start_f1": 1.0, "first_answer_within_1_line": 1.0,
                             "approach_count_exact": 1.0, "outcome_accuracy": 1.0}


def test_one_approach_baseline():
    trivial = seg(("approach", 0, len(TEXT), 1, None, "incomplete"))
    rep = score([(TEXT, trivial, GOLD)])
    assert rep.kind_agreement == pytest.approx(26 / len(TEXT))
    assert (rep.start_tp, rep.n_pred_starts, rep.n_gold_starts) == (1, 1, 2)  # line 0 is within 1 line of line 1
    assert rep.first_answer_accuracy == 0.0 and rep.approach_count_exact == 0.0
    assert rep.outcome_accuracy == 0.0  # both gold approaches map to the one predicted, outcome incomplete


def test_off_by_two_lines_misses():
    pred = seg(("restatement", 0, 8), ("approach", 8, 42, 1, "2", "correct"), ("conclusion", 42, len(TEXT)),
               first_answer_end=45)
    rep = score([(TEXT, pred, GOLD)])
    assert rep.first_answer_accuracy == 0.0  # line 5 vs gold line 3
    assert rep.start_tp == 1 and rep.outcome_accuracy == 0.5
