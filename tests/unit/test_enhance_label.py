"""Outcomes through dlcot.answers, the answer a reasoning ends with, and the backend interface."""
from __future__ import annotations

import json

import pytest

from dlcot.answers import AnswerChecker
from dlcot.enhance.label import Backend, OfflineBackend, final_answer_of, label
from dlcot.enhance.segment import segment
from dlcot.records import Segmentation, Trace
from tests.benchmarks.segmentation_metrics import score
from tests.enhance_fixtures import TEXT


@pytest.fixture(scope="module")
def checker():
    with AnswerChecker(workers=1, timeout_s=2) as ch:
        yield ch


def test_outcomes_of_the_hand_built_trace(checker):
    lab = label(segment(TEXT, "14"), "14", final_answer_of(TEXT), checker)
    assert [s.outcome for s in lab.segmentation.segments if s.kind == "approach"] == [
        "incorrect", "correct", "incorrect", "correct"]
    assert all(s.outcome is None for s in lab.segmentation.segments if s.kind != "approach")
    assert lab.first_correct == 2 and lab.final_answer == "14" and lab.final_verdict.correct
    assert lab.gold_parsable and lab.error_spans == []


def test_abandoned_approach_is_incomplete_and_equivalent_forms_are_correct(checker):
    text = ("So I need half of 3/4.\n\n"
            "Let me try converting to decimals: 3/4 = 0.75. Hmm, this is getting messy.\n\n"
            "Let me try a different approach. Multiply fractions: 1/2 * 3/4 = 3/8.\n\n"
            "So the answer is 0.375.\n\n"
            "Therefore, the answer is \\boxed{\\dfrac{3}{8}}.")
    lab = label(segment(text, "\\frac{3}{8}"), "\\frac{3}{8}", final_answer_of(text), checker)
    outcomes = [s.outcome for s in lab.segmentation.segments if s.kind == "approach"]
    assert outcomes == ["incomplete", "correct"]


def test_unparsable_gold_is_reported(checker):
    lab = label(segment(TEXT, "14"), "}{", "14", checker)
    assert not lab.gold_parsable


@pytest.mark.parametrize("text,answer", [
    ("Therefore, the only solution is \\(r = 4\\).\n\nI think that's correct.", "4"),
    ("Therefore, the area is 16.\n\n**Final Answer**\n\n\\[ \\boxed{16} \\]", "16"),
    ("Converting, 6/3 + 5/3 + 3/3 = 14/3.\n\nYes, that seems correct.\n\nI think that's the final answer.", "14/3"),
    ("So far so good.\n\nI'm confident that the remainder is 3.", "3"),
    ("Is the answer 1/3? No.\n\nSo, the probability is 33/100.\n\nI think that's the answer.", "33/100"),
    ("Alternatively, maybe I can use vectors.\n\nWait, perhaps", None),
    ("", None),
])
def test_final_answer_of(text, answer):
    assert final_answer_of(text) == answer


def test_offline_backend_implements_the_backend_protocol(checker):
    backend = OfflineBackend(checker)
    assert isinstance(backend, Backend) and backend.marks_error_spans is False
    trace = Trace(id="t", problem="2 + 3 * 4?", reasoning=TEXT, gold_answer="14")
    lab = backend.label(trace, backend.segment(trace))
    assert lab.first_correct == 2


@pytest.mark.shared_data
def test_gold_dev_outcome_accuracy(shared_data, checker):
    traces = {}
    with (shared_data / "longcot" / "skyt1_math500.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            traces[row["id"]] = row
    backend = OfflineBackend(checker)
    pairs = []
    with (shared_data / "gold" / "segments_dev.jsonl").open() as fh:
        for line in fh:
            gold = Segmentation.from_dict(json.loads(line))
            row = traces[gold.id]
            trace = Trace(id=gold.id, problem=row["problem"], reasoning=row["reasoning"],
                          gold_answer=row["gold_answer"])
            pairs.append((row["reasoning"], backend.label(trace, backend.segment(trace)).segmentation, gold))
    assert score(pairs).outcome_accuracy >= 0.85


@pytest.mark.parametrize("reason, outcome", [("timeout", "unverified"), ("undecided", "unverified"),
                                             ("mismatch", "incorrect"), ("no_answer", "incomplete")])
def test_an_undecided_verdict_is_unverified_not_incorrect(reason, outcome):
    from dlcot.answers import Verdict
    from dlcot.enhance.label import outcome_of

    assert outcome_of(Verdict(False, reason, "x")) == outcome
