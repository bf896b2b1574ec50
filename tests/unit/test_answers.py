"""Answer extraction and math-verify checking, asserting what math-verify actually decides."""
from __future__ import annotations

import json
import time

import pytest

from dlcot.answers import AnswerChecker, extract_answer, normalize_gold, split_thought


@pytest.fixture(scope="module")
def checker():
    with AnswerChecker(workers=1, timeout_s=5) as c:
        yield c


@pytest.mark.parametrize("text,expected", [
    ("so \\boxed{\\frac{3\\sqrt{3}}{4}}.", "\\frac{3\\sqrt{3}}{4}"),       # nested braces (the Sky-T1 grader's bug)
    ("first \\boxed{1} then \\boxed{2}", "2"),                              # multiple boxes: the last
    ("answer \\boxed{5} and then \\boxed{7", "5"),                          # unclosed box ignored
    ("thus \\boxed 9 is it", "9"),
    ("<think>maybe \\boxed{3}</think>The answer is \\boxed{4}.", "4"),     # after the thought preferred
    ("<think>so \\boxed{3}</think>I am done.", "3"),                        # falls back to the thought
    ("Natalia sold 72 clips.\n#### 72", "72"),
    ("Hence, the final answer is 12.", "12"),
    ("I think the answer is correct.", None),                               # a judgement, not an answer
    ("Therefore, the number of divisors is 9.", "9"),
    ("Therefore, x is \\frac{1}{8}.", "\\frac{1}{8}"),                         # the backslash is kept
    ("So, the answer should be 4 beakers.", "4"),                          # "be" is a word, units dropped
    ("The answer is clearly 6.", "6"),                                      # hedges are not the answer
    ("Thus the total is \\(42\\).", "42"),
    ("no answer here at all", None),
    ("", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_split_thought_understands_both_tag_styles():
    assert split_thought("a</think>b") == ("a", "b")
    assert split_thought("<|begin_of_thought|>x<|end_of_thought|>y") == ("<|begin_of_thought|>x", "y")
    assert split_thought("no tags") == ("", "no tags")


@pytest.mark.parametrize("raw,gold", [("Janet sells ... #### 1,800", "1800"), ("$\\boxed{\\frac12}$", "\\frac12"),
                                      ("$5$", "5"), ("\\text{Evelyn}", "\\text{Evelyn}")])
def test_normalize_gold(raw, gold):
    assert normalize_gold(raw) == gold


@pytest.mark.parametrize("gold,pred,correct", [
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),
    ("0.5", "\\frac12", True),
    ("[2,5)", "[2,5)", True),
    ("3", "x=3", True),
    ("5\\text{ cm}", "5", True),
    ("\\text{(C)}", "C", True),
    ("1,000", "1000", True),
    ("\\frac{3\\sqrt{3}}{4}", "4", False),
    ("10\\%", "0.1", False),          # math-verify does not equate percent and decimal
    ("\\pi", "3.14159", False),
    ("1/3", "0.333", False),
])
def test_math_verify_decisions(checker, gold, pred, correct):
    assert checker.verify_many([(gold, pred)])[0][0] is correct


def test_plain_numbers_are_decided_without_math_verify(monkeypatch):
    import dlcot.answers as answers

    monkeypatch.setattr(answers, "_verify_worker", None)  # would fail if called
    with AnswerChecker() as c:
        assert c.verify_many([("1,000", "1000"), ("72", "72.0"), ("-3", "3"), ("0.50", "0.5")]) == [
            (True, "match"), (True, "match"), (False, "mismatch"), (True, "match")]


def test_check_reasons(checker):
    assert checker.check("4", "The answer is \\boxed{4}.").reason == "match"
    assert checker.check("4", "The answer is \\boxed{5}.").reason == "mismatch"
    v = checker.check("4", "I give up.")
    assert (v.correct, v.reason, v.extracted) == (False, "no_answer", None)


def _hangs_on_hang(gold, pred, timeout_s):
    time.sleep(30 if pred == "hang" else 0)
    return True, "match"


def test_timeout_is_enforced_and_pool_recovers(monkeypatch):
    from dlcot import answers

    monkeypatch.setattr(answers, "_verify_worker", _hangs_on_hang)
    with AnswerChecker(workers=1, timeout_s=0.5) as c:
        out = c.verify_many([("1", "hang"), ("1", "ok")])
    assert out == [(False, "timeout"), (True, "match")] and c.n_timeouts == 1


def test_regrade_skyt1_sample_against_known_grader_bug(shared_data, checker):
    """math500/73: the original grader read \\boxed{\\frac{3\\sqrt{3}}{4}} as `4` and marked it wrong."""
    with open(shared_data / "longcot/skyt1_math500.jsonl") as fh:
        rows = {r["id"]: r for r in map(json.loads, fh)}
    row = rows["math500/73"]
    assert row["model_answer"] == "4" and row["is_correct"] in (False, "False")
    v = checker.check(normalize_gold(row["gold_answer"]), row["raw_output"])
    assert v.correct and v.extracted == "\\frac{3\\sqrt{3}}{4}"
