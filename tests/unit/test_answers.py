"""Answer extraction and math-verify checking, asserting what math-verify actually decides."""
from __future__ import annotations

import gc
import json
import time

import pytest

from dlcot import procs
from dlcot.answers import AnswerChecker, extract_answer, find_answer, normalize_gold, split_thought


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
    # the field's convention: the answer stated at the end, without a marker
    ("So, the sum of the proper divisors is indeed 284.\n\nI think that's the final answer.", "284"),
    ("I think I'm good. The height is 5 cm.", "5"),
    ("So, I'm confident that the answer is 9 customers.", "9"),
    ("So, the final answer is 28 different pizzas.", "28"),
    ("Therefore, I'm confident that the answer is three boxes contain neither pens nor pencils.", "3"),
    ("All three methods agree, so I'm confident that 5 students participate in both clubs.", "5"),
    ("Profit: $93 - $15 = $78.\n\nEverything seems to add up correctly. I think that's the right answer.", "78"),
    ("Thus, the equation of the plane is:\n\\[\n5x - 7y + 11z + 4 = 0\n\\]", "5x - 7y + 11z + 4 = 0"),
    ("In conclusion, we have confirmed that:\n\n$$\\tan A = 2$$", "2"),
    ("I think the maximum value is 1, achieved at \\( x = y = \\frac{\\sqrt{2}}{2} \\).", "1"),
    ("The area decreases by 10%.", "10%"),
    ("Therefore, the sum \\(a + b + c = 11 + 9 + 0 = 20\\).", "20"),
    # the thought never closed: the same rules on its end; a response cut off falls back to the thought
    ("<|begin_of_thought|>long work... So the answer is 5.", "5"),
    ("<think>Hence x is 3.</think>\n\nWe first note that\n\n1.", "3"),
    # ... but a text cut mid-sentence or ending in doubt states no answer
    ("So, \\( x = 8k + 3 \\) for some", None),
    ("Modulus is 16.\n\nBut earlier methods gave me 16, so", None),
    ("Therefore, the slope is 1/", None),
    ("So the total is 12.\n\nWait, maybe I should recount the second row.", None),
    ("Approximating \\( \\sqrt{120", None),
    # false positives: a recalled or rejected value never beats the adopted one
    ("I recall the answer is 1/2, but that ignores y<3, so the probability is 5/9.", "5/9"),
    ("So the probability is 5/9.\n\nEarlier I thought it was 1/2, but that was wrong.", "5/9"),
    ("If the answer is 3, then the sum is odd. Since it is even, the answer is 4.", "4"),
    ("The answer is 1/2.\n\nBut that ignores y<3, so the probability is 5/9.", "5/9"),
    ("Initially I thought the answer is 6, but after correcting the count, the total is 8.", "8"),
    # the key-factors paper's format (#16): `The answer is N`, multiple choice, yes/no
    ("He has 5 + 7 = 12 apples. The answer is 12", "12"),
    ("So the correct option is the second one. The answer is (B).", "B"),
    ("The answer is C", "C"),
    ("Apples are fruit, so the answer is yes.", "yes"),
    ("The answer is No.", "no"),
    # ... as the released key-factors CoT writes it (../shared/data/keyfactors)
    ("Subtract the sold books from the total. The answer is 115 - 78 = 37", "37"),
    ("we assume she needs to add 21 more cups to meet the requirement.The answer is 21", "21"),
    ("Therefore, the answer is 7.The answer is 2", "2"),
    ("The answer is 140 (assuming yarn cost is 0, as it's not used)", "140"),
    ("The answer is 13 is incorrect, the correct answer is 68.", "68"),
    ("The answer is 10, not 13. I think there might be a mistake in the answer!", "10"),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


# Rules found on the held-out grading set (tests/benchmarks/bench_grading.py): unfinished or exploring endings state
# no answer, and a connective's comma is not part of the value. Sentences in our own words, one per rule. "So,"
# and "Hence," lead-ins were found on the Sky-T1 traces ("So, b = -1." read whole: math-verify judged it wrong).
@pytest.mark.parametrize("text,expected", [
    ("Therefore, $m = 13$.", "13"),                                          # not ",  m = 13"
    ("Thus, $PQ = \\sqrt{7}$.", "\\sqrt{7}"),                               # two-letter symbol, right side
    ("So, k = -2.", "-2"),                                                   # not "So, k = -2" (math-verify: wrong)
    ("Hence, $y = 8$.", "8"),
    ("\\[ \\log_{2} 8 = 3 \\]\n\\[ \\log_{2} 16 = 4 \\]\n\\[ \\log_{2} 32", None),  # cut inside a display \\[
    ("Next,\n\n\\[\ng(3) + 3g(1) = 2 \\implies g(3)", None),                   # ... not the equation so far
    ("Alternatively, maybe the count of red balls is 4.", None),              # exploring, not concluding
    ("So there are 20 seats.\n\nAlternatively, I can count them as 4 rows of 5, which is 4 * 5 = 20.\n\nI think "
     "that's right.", "20"),                                                 # a re-derivation, not an exploration
    ("So, perhaps the median is 6, but the mode is unclear.", None),          # only a supposition
    ("The week index ranges from 1 to 52.", None),                            # a range, not a result
    ("The chance of a six is 1 minus the chance of no six.", None),           # an expression in words
    ("For n = 7:\n\nthe quotient is \\( \\frac{45}{7} \\), not an integer. Invalid.", None),  # rejected; lead-in
    ("Odd squares are 1, 9, 25, and so on.", None),                           # a pattern
    ("So the residues are 1, 2, ..., 12.", None),                             # an elided list
    ("Therefore, the sum \\( \\sum_{k=0}^{9} (k + 2) \\)", None),             # not the fragment "0}^{9} (k + 2)"
])
def test_unfinished_or_exploring_endings(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text,kind,strict", [
    ("The height is 5 cm.", "prose", None),
    ("So, the final answer is 9901.", "marker", "9901"),
    ("\\boxed{4}", "boxed", "4"),
    ("Natalia sold 72 clips.\n#### 72", "marker", "72"),
    ("I think that's it.", None, None),
])
def test_strict_grading_counts_only_explicit_markers(text, kind, strict):
    found = find_answer(text)
    assert (found.kind if found else None) == kind
    assert extract_answer(text, "strict") == strict


def test_unknown_grading_is_an_error():
    with pytest.raises(ValueError, match="grading"):
        extract_answer("x", "lenient")


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
    ("10", "10\\%", True),          # a percent sign is dropped before comparing (Qwen2.5-Math evaluator)
    ("12", "12^{\\text{th}}\\text{ grade}", True),
    (".35625", "0.35625", True),
    ("\\text{(B)}", "(B)", True),
    ("B", "C", False),
    ("yes", "Yes", True),
    ("no", "yes", False),
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


def _sleeps_on_hang(gold, pred, cpu_s):
    time.sleep(30 if pred == "hang" else 0)
    return True, "match"


def test_a_hung_worker_is_undecided_retried_and_the_pool_recovers(monkeypatch):
    from dlcot import answers

    monkeypatch.setattr(answers, "_verify_worker", _sleeps_on_hang)
    monkeypatch.setattr(answers, "_warm_worker", lambda: None)  # a fresh pool starts within the short deadline
    with AnswerChecker(workers=1, timeout_s=0.5, wall_timeout_s=0.5) as c:
        out = c.verify_many([("1", "hang"), ("1", "ok")])
        assert out == [(False, "undecided"), (True, "match")]
        assert c.n_undecided == 1 and ("1", "hang") not in c._cache  # not a label: the next call retries it


def _slow_parse(real):
    def parse(text, **kw):
        if "{3}{6}" in text or "0.5" in text:  # not the worker's warm-up parses
            time.sleep(1.2)  # wall clock passes (a loaded machine), CPU time does not
        return real(text, **kw)
    return parse


def _spinning_parse(real):
    def parse(text, **kw):
        if "spin" in text:
            while True:
                pass
        return real(text, **kw)
    return parse


def test_verdicts_do_not_depend_on_wall_clock(monkeypatch):
    """Each side gets a CPU-time budget: 1.2 s of waiting per parse with a 0.2 s budget still decides (the old
    whole-second alarm gave `timeout` / `unparsable_gold` here); a parse that burns CPU is `undecided`, every
    time, and never `unparsable_gold` or `mismatch`."""
    import math_verify

    monkeypatch.setattr(math_verify, "parse", _slow_parse(math_verify.parse))
    with AnswerChecker(workers=1, timeout_s=0.2) as c:
        assert c.verify_many([("\\frac{3}{6}", "0.5")]) == [(True, "match")]
    monkeypatch.setattr(math_verify, "parse", _spinning_parse(math_verify.parse))
    with AnswerChecker(workers=1, timeout_s=0.1) as c:
        for _ in range(2):
            assert c.verify_many([("\\frac{1}{2}", "\\spin"), ("\\spin", "1")]) == [
                (False, "undecided"), (False, "undecided")]
        assert c.n_undecided == 4
        assert c.check_many([("\\frac{1}{2}", "so \\boxed{\\spin}")])[0].reason == "undecided"


def test_gold_is_parsed_once_per_worker(monkeypatch, tmp_path):
    import math_verify

    log = tmp_path / "parsed.txt"
    real = math_verify.parse

    def counting(text, **kw):
        with open(log, "a") as fh:
            fh.write(text + "\n")
        return real(text, **kw)

    monkeypatch.setattr(math_verify, "parse", counting)
    with AnswerChecker(workers=1) as c:
        # not plain fractions: those are decided without math-verify (answer_exact.py)
        c.verify_many([("\\frac{1}{3}", f"\\frac{{{k}a}}{{{3 * k}a}}") for k in range(2, 7)])
    parsed = log.read_text().splitlines()[2:]  # after the worker's warm-up parses
    assert parsed.count("\\boxed{\\frac{1}{3}}") == 1 and len(parsed) == 6


@pytest.mark.parametrize("text,expected", [
    ("\\boxed{7} " + "\\boxed{1 + " * 40_000 + " the answer is stuck", "7"),  # 8,000 of these took 16.6 s before
    ("Final Answer\n" * 30_000, "Final Answer"),  # a look-back per marker made this one quadratic (13 s)
    ("the answer is correct. " * 30_000, None),
    ("{" * 100_000, None),
    ("<think>" + "so x is 5. " * 20_000 + "</think>" + "The answer is " * 10_000, "5"),
])
def test_extraction_is_linear(text, expected):
    """Repetition loops of a stuck student: sizes that would take seconds to minutes if any rule were quadratic."""
    start = time.perf_counter()
    assert extract_answer(text) == expected
    extract_answer(text, "strict")
    assert time.perf_counter() - start < 5.0


def test_regrade_skyt1_sample_against_known_grader_bug(shared_data, checker):
    """math500/73: the original grader read \\boxed{\\frac{3\\sqrt{3}}{4}} as `4` and marked it wrong."""
    with open(shared_data / "longcot/skyt1_math500.jsonl") as fh:
        rows = {r["id"]: r for r in map(json.loads, fh)}
    row = rows["math500/73"]
    assert row["model_answer"] == "4" and row["is_correct"] in (False, "False")
    v = checker.check(normalize_gold(row["gold_answer"]), row["raw_output"])
    assert v.correct and v.extracted == "\\frac{3\\sqrt{3}}{4}"


@pytest.mark.parametrize("text,expected", [("19", "19"), (" 19.\n", "19"), ("x = 3", "3"),
                                           ("\\frac{1}{2}", "\\frac{1}{2}"), ("Hello", None),
                                           ("See the table below", None), ("(2, 3)", "(2, 3)")])
def test_a_bare_value_is_the_answer_only_baselines_target(text, expected):
    """The key-factors answer-only baseline trains students to output the value alone: convention grading reads
    it; strict grading (explicit markers only) does not."""
    assert extract_answer(text) == expected
    assert extract_answer(text, grading="strict") is None


def test_the_verifier_process_starts_with_what_it_inherits_frozen():
    """Under dlcot's at-fork hook (every command installs it) a verifier's collections skip what it inherited
    (gc.freeze, Python's advice for forked processes); this process is left as it was."""
    procs.install(sigterm=False)
    gc.unfreeze()
    with AnswerChecker() as checker:
        assert checker._get_pool().apply(gc.get_freeze_count) > 1000
    assert gc.get_freeze_count() == 0
