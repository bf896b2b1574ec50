"""The synthetic problems and teacher: determinism, true arithmetic, and exact segmentations (docs/architecture.md §5).

The segmentation is what the DLCoT segmenter/clusterer is scored against on the embedded default data, so the
invariants here are the format's contract, checked over hundreds of traces and at extreme style settings.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from functools import cache

import pytest

from dlcot.data import synthetic_text as phrases
from dlcot.data.synthetic import SyntheticTrace, TeacherStyle, synthetic_traces, teach
from dlcot.data.synthetic_problems import EASY_PROBLEMS, SyntheticProblem, generate_problems

KINDS = {"restatement", "understanding", "approach", "verification", "conclusion"}
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
QUIET = {"p_abandon": 0.0, "p_slip": 0.0, "p_self_correct": 0.0, "p_interrupt": 0.0, "p_redundant": 0.0,
         "p_wrong_final": 0.0}
EQUATION = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
LONG_EXPRESSION = re.compile(r"\(?\d+ [-+*/] \(?\d+\)? [-+*/] \(?\d")  # two operators in a row: "50 - 3 * 4"


@cache
def default_traces() -> tuple[SyntheticTrace, ...]:
    return tuple(synthetic_traces(300, 11))


def traces(n: int = 120, seed: int = 5, **style: float) -> list[SyntheticTrace]:
    return list(synthetic_traces(n, seed, TeacherStyle(**style)))


def seg_text(trace: SyntheticTrace, seg: dict) -> str:
    return trace.reasoning[seg["start"]:seg["end"]]


def approaches(trace: SyntheticTrace) -> list[dict]:
    return [s for s in trace.segmentation["segments"] if s["kind"] == "approach"]


def first_correct_end(trace: SyntheticTrace) -> int:
    """End of the first approach reaching the gold answer: exploration before it, redundancy after it."""
    return next(s["end"] for s in approaches(trace) if s["answer"] == trace.gold_answer)


def assert_valid_segmentation(trace: SyntheticTrace) -> None:
    """Every contract of the gold format, plus what the synthetic teacher promises on top."""
    seg, text = trace.segmentation, trace.reasoning
    assert set(seg) == {"id", "n_chars", "first_answer_end", "segments"} and seg["id"] == trace.id
    assert seg["n_chars"] == len(text)
    spans = seg["segments"]
    assert spans[0]["start"] == 0 and spans[-1]["end"] == len(text)
    for a, b in zip(spans, spans[1:], strict=False):
        assert a["end"] == b["start"], (trace.id, a, b)
    for s in spans:
        assert set(s) >= {"kind", "start", "end", "approach", "answer", "outcome"}
        assert s["kind"] in KINDS and s["start"] < s["end"]
        assert s["start"] == 0 or text[s["start"] - 2:s["start"]] == "\n\n", "spans start at a paragraph"
        assert not text[s["start"]].isspace()
        if s["kind"] != "approach":
            assert s["approach"] is None and s["outcome"] is None
        if s["kind"] in ("restatement", "understanding", "conclusion"):
            assert s["answer"] is None
        if s["answer"] is not None:
            assert s["answer"] in seg_text(trace, s)
    kinds = [s["kind"] for s in spans]
    assert kinds[0] == "restatement" and kinds[-1] == "conclusion" and kinds.count("conclusion") == 1
    assert "understanding" not in kinds[2:]
    # approach numbers: 1, 2, ... in order of first appearance; a number comes back only right after a check
    seen: list[int] = []
    for k, s in enumerate(spans):
        if s["kind"] != "approach":
            continue
        if s["approach"] in seen:
            assert s["approach"] == seen[-1] and spans[k - 1]["kind"] == "verification"
            assert spans[k - 2]["approach"] == s["approach"], "resumed approach keeps its number"
        else:
            assert s["approach"] == len(seen) + 1
            seen.append(s["approach"])
    assert seen, "at least one approach"
    # outcome per approach number, against gold: the answer is the one its last piece reaches
    for n in seen:
        pieces = [s for s in spans if s["approach"] == n]
        answer = pieces[-1]["answer"]
        assert all(p["answer"] is None for p in pieces[:-1])
        expected = "incomplete" if answer is None else "correct" if answer == trace.gold_answer else "incorrect"
        assert {p["outcome"] for p in pieces} == {expected}
    # first stated candidate answer
    first = next(s for s in spans if s["kind"] == "approach" and s["answer"] is not None)
    answer_end = seg["first_answer_end"]
    assert first["start"] < answer_end <= first["end"] and text[:answer_end].endswith(first["answer"])
    assert not any(s["answer"] for s in spans if s["end"] <= first["start"])
    # conclusion, final answer, response
    conclusion = seg_text(trace, spans[-1])
    assert conclusion.endswith(f"the answer is \\boxed{{{trace.final_answer}}}.")
    assert trace.response.endswith(f"\\boxed{{{trace.final_answer}}}.")
    assert trace.is_correct == (trace.final_answer == trace.gold_answer)
    final_approach = [s for s in spans if s["kind"] == "approach" and s["answer"] is not None][-1]
    assert final_approach["answer"] == trace.final_answer or final_approach["outcome"] == "correct"


# ---- problems ------------------------------------------------------------------------------------------------
def test_problems_are_deterministic_and_seed_dependent() -> None:
    assert generate_problems(60, 7) == generate_problems(60, 7)
    other = generate_problems(60, 8)
    assert sum(a.problem != b.problem for a, b in zip(generate_problems(60, 7), other, strict=True)) > 50


def test_problem_i_does_not_depend_on_n() -> None:
    assert generate_problems(200, 3)[:100] == generate_problems(100, 3)
    assert [p.id for p in generate_problems(3, 0)] == ["synth/000000", "synth/000001", "synth/000002"]
    long = [t.to_trace_record() for t in synthetic_traces(40, 3)]
    assert long[:20] == [t.to_trace_record() for t in synthetic_traces(20, 3)]


@pytest.mark.parametrize("knobs, seed, digest", [
    ({}, 0, "ec8c88226ac6e96f50faff25ef631d82926c4658afcdd11dbc9ff746a679d5e2"),
    (EASY_PROBLEMS, 7, "852f585c70ab0273dc9fdd61c011a393880e29678a196d9a9fce56e28bcdfd9b"),
    ({"min_steps": 3, "max_steps": 6, "max_operand": 12}, 0,
     "782b31dc6ef63cbb00a3ff48efb1b53f9045964a53db73a075b9b54ec78724a4"),
])
def test_the_problems_stay_the_same_data(knobs: dict, seed: int, digest: str) -> None:
    """The generator's output is data other runs depend on (shared-stage hashes, recorded demo results): a change
    of RNG draws or wording must be deliberate. Digests recorded before `_make_problem` was split into steps."""
    problems = [dataclasses.asdict(p) for p in generate_problems(300, seed, **knobs)]
    assert hashlib.sha256(json.dumps(problems, sort_keys=True).encode()).hexdigest() == digest


@pytest.mark.parametrize("knobs", [{}, EASY_PROBLEMS, {"min_steps": 3, "max_steps": 6, "max_operand": 100}])
def test_gold_answer_is_the_true_result_of_the_steps(knobs: dict) -> None:
    lo, hi = knobs.get("min_steps", 2), knobs.get("max_steps", 4)
    top = knobs.get("max_operand", 50)
    for p in generate_problems(300, 1, **knobs):
        assert isinstance(p, SyntheticProblem) and lo <= p.difficulty == len(p.steps) <= hi
        numbers_in_text = {int(x) for x in re.findall(r"\d+", p.problem)}
        assert all(0 < x <= top for x in numbers_in_text), p.problem
        running = None
        for step in p.steps:
            result = OPS[step.op](Fraction(step.left), Fraction(step.right))
            assert result == step.result and result.denominator == 1 and result > 0, (p.id, step)
            if step.kind in ("start", "quantity"):
                assert step.op == "*" and {step.left, step.right} <= numbers_in_text
                running = step.result if step.kind == "start" else running
            else:
                assert step.kind == "combine"
                assert running is None or step.left == running, (p.id, step)
                assert step.left in numbers_in_text or running is not None
                running = step.result
        assert p.gold_answer == str(p.steps[-1].result) and p.target.startswith("how many")
        assert p.problem.endswith("?")


def test_problem_text_varies() -> None:
    problems = generate_problems(300, 2)
    assert len({p.scenario for p in problems}) >= 5
    assert len({p.problem.split()[0] for p in problems}) >= 10, "names vary"
    assert len({p.problem for p in problems}) == 300


def test_bad_problem_knobs_raise() -> None:
    with pytest.raises(ValueError, match="min_steps"):
        generate_problems(1, 0, min_steps=0)
    with pytest.raises(ValueError, match="max_operand"):
        generate_problems(1, 0, max_operand=2)


# ---- the teacher -----------------------------------------------------------------------------------------------
def test_traces_are_deterministic_and_seed_dependent() -> None:
    problem = generate_problems(1, 0)[0]
    assert teach(problem, 4) == teach(problem, 4)
    assert teach(problem, 4, trace_id="x/1").reasoning != teach(problem, 4).reasoning
    a, b = list(synthetic_traces(30, 4)), list(synthetic_traces(30, 5))
    assert a == list(synthetic_traces(30, 4))
    assert sum(x.reasoning != y.reasoning for x, y in zip(a, b, strict=True)) > 25


def test_traces_do_not_depend_on_the_hash_seed() -> None:
    code = ("import hashlib; from dlcot.data.synthetic import synthetic_traces; "
            "print(hashlib.sha256(''.join(t.reasoning for t in synthetic_traces(20, 9)).encode()).hexdigest())")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": h}).stdout for h in ("1", "2")}
    assert len(outputs) == 1


def test_segmentation_invariants_default_style() -> None:
    for trace in default_traces():
        assert_valid_segmentation(trace)


@pytest.mark.parametrize("style", [
    QUIET,
    {"p_slip": 1.0, "p_abandon": 0.0},
    {"p_abandon": 1.0, "p_slip": 0.0, "max_failed_approaches": 2},
    {"p_self_correct": 1.0, "p_interrupt": 1.0, "p_redundant": 1.0, "n_checks": (0, 0)},
    {"p_wrong_final": 1.0, "p_check_after_slip": 1.0, "p_understanding": 0.0, "verbosity": 1.0},
])
def test_segmentation_invariants_extreme_styles(style: dict) -> None:
    for trace in traces(80, 2, **style):
        assert_valid_segmentation(trace)
    for trace in synthetic_traces(40, 2, TeacherStyle(**style), **EASY_PROBLEMS):
        assert_valid_segmentation(trace)


def test_quiet_style_is_restatement_one_correct_approach_checks_conclusion() -> None:
    for trace in traces(60, **QUIET, n_checks=(2, 2), p_understanding=0.0):
        kinds = [s["kind"] for s in trace.segmentation["segments"]]
        assert kinds == ["restatement", "approach", "verification", "verification", "conclusion"]
        assert trace.is_correct and approaches(trace)[0]["outcome"] == "correct"


def test_failure_styles_produce_what_they_say() -> None:
    for trace in traces(40, **{**QUIET, "p_slip": 1.0, "max_failed_approaches": 3}):
        assert [s["outcome"] for s in approaches(trace)] == ["incorrect"] * 3 + ["correct"]
    for trace in traces(40, **{**QUIET, "p_abandon": 1.0, "max_failed_approaches": 2}):
        assert [s["outcome"] for s in approaches(trace)] == ["incomplete"] * 2 + ["correct"]
        assert all(s["answer"] is None for s in approaches(trace)[:2])
    for trace in traces(40, **{**QUIET, "p_wrong_final": 1.0}):
        assert not trace.is_correct and [s["outcome"] for s in approaches(trace)] == ["incorrect"]
        assert trace.final_answer != trace.gold_answer and f"\\boxed{{{trace.final_answer}}}" in trace.reasoning


def test_rates_follow_the_style() -> None:
    """Defaults: per exploration approach 0.15 abandoned / 0.2 incorrect; 0.3 redundant; 0.1 wrong traces."""
    ts = default_traces()
    wrong = sum(not t.is_correct for t in ts) / len(ts)
    assert 0.04 <= wrong <= 0.18
    correct = [t for t in ts if t.is_correct]
    numbers = [(t.id, s["approach"], s["outcome"]) for t in correct for s in approaches(t)
               if s["start"] < first_correct_end(t)]
    outcomes = [o for _, _, o in dict.fromkeys(numbers)]
    assert 0.08 <= outcomes.count("incomplete") / len(outcomes) <= 0.24
    assert 0.12 <= outcomes.count("incorrect") / len(outcomes) <= 0.3
    redundant = sum(any(s["start"] >= first_correct_end(t) for s in approaches(t)) for t in correct) / len(correct)
    assert 0.18 <= redundant <= 0.45
    # a redundant re-derivation after the first answer is a new, correct approach with a different method
    for t in correct:
        method = {s["approach"]: s["note"].split(";")[0] for s in approaches(t)}
        first = next(s["approach"] for s in approaches(t) if s["answer"] == t.gold_answer)
        for s in approaches(t):
            if s["start"] >= first_correct_end(t):
                assert s["approach"] > first and s["outcome"] == "correct" and method[s["approach"]] != method[first]
    # "Wait, 7 * 8 is 56, not 54." inside an approach (not its first paragraph): p_self_correct per correct approach
    fixed = sum(any(re.match(r"(Wait|Hmm, wait)\W.*\d+, not \d+", p) for s in approaches(t)
                    for p in seg_text(t, s).split("\n\n")[1:]) for t in ts)
    assert 0.08 <= fixed / len(ts) <= 0.35


def test_self_correction_is_not_a_new_approach() -> None:
    for trace in traces(80, **{**QUIET, "p_self_correct": 1.0}):
        (only,) = approaches(trace)
        assert only["approach"] == 1 and only["outcome"] == "correct"
        paragraphs = seg_text(trace, only).split("\n\n")
        fixes = [p for p in paragraphs[1:] if p.startswith(("Wait,", "Hmm, wait."))]
        assert len(fixes) == 1 and re.search(r"(is|=) (actually )?\d+, not \d+", fixes[0]), paragraphs


def test_interrupted_approach_keeps_its_number() -> None:
    resumed = 0
    for trace in traces(60, **{**QUIET, "p_interrupt": 1.0}):
        spans = trace.segmentation["segments"]
        numbers = [s["approach"] for s in spans if s["kind"] == "approach"]
        assert set(numbers) == {1}
        if len(numbers) == 2:
            resumed += 1
            k = next(i for i, s in enumerate(spans) if s["kind"] == "approach")
            assert spans[k + 1]["kind"] == "verification" and spans[k + 2]["approach"] == 1
    assert resumed >= 50


def test_segments_read_sensibly() -> None:
    openings = phrases.AFTER_WRONG + phrases.SWITCH + phrases.RESTART + phrases.AFTER_ABANDON + phrases.REDUNDANT
    starts = tuple(o.split("{")[0] for o in openings)
    problems = {p.id: p for p in generate_problems(300, 11)}
    for trace in default_traces():
        spans = trace.segmentation["segments"]
        assert problems[trace.id].target in seg_text(trace, spans[0])
        assert "?" in problems[trace.id].problem and trace.problem == problems[trace.id].problem
        seen = set()
        for s in spans:
            text = seg_text(trace, s)
            if s["kind"] == "approach" and s["approach"] not in seen:
                seen.add(s["approach"])
                if s["approach"] > 1:
                    assert text.startswith(starts), text[:80]
            if s["kind"] == "verification" and s["answer"]:
                assert s["answer"] in text
        conclusion = seg_text(trace, spans[-1])
        if trace.is_correct:
            assert f"\\boxed{{{trace.gold_answer}}}" in conclusion


def test_same_method_shares_equations_and_methods_differ() -> None:
    """What the approach clusterer relies on: a same-method re-derivation repeats the approach's equations; the
    three methods have different shapes (one op per line / one long expression / an unknown x)."""
    checked = 0
    for trace in default_traces():
        spans = trace.segmentation["segments"]
        final_no = next(s["approach"] for s in spans if s["kind"] == "approach" and s["answer"] == trace.final_answer)
        final = {eq for s in spans if s["approach"] == final_no for eq in EQUATION.findall(seg_text(trace, s))}
        for s in spans:
            text = seg_text(trace, s)
            if s["kind"] == "verification" and s.get("note") == "rederive":
                assert set(EQUATION.findall(text)) <= final  # the approach may also hold a fixed slip
                checked += 1
            if s["kind"] == "approach" and s["answer"] is not None:  # complete, or the end of one
                method = s["note"].split(";")[0].removeprefix("method=")
                assert bool(re.search(r"\bx\b", text)) == (method == "equation"), (method, text)
                if method == "forward" or (method == "expression" and "resumed" not in s["note"]):
                    assert bool(LONG_EXPRESSION.search(text)) == (method == "expression"), (method, text)
    assert checked >= 20


def test_records_have_the_contract_fields() -> None:
    trace = default_traces()[0]
    record = trace.to_trace_record()
    assert set(record) == {"id", "problem", "reasoning", "response", "gold_answer", "teacher", "source"}
    assert record["teacher"] == "synthetic-qwen" and record["source"] == "dlcot.synthetic"
    json.dumps(record), json.dumps(trace.to_segmentation())
    assert trace.to_segmentation()["segments"][0]["kind"] == "restatement"
    assert set(generate_problems(1, 0)[0].to_record()) >= {"id", "problem", "gold_answer"}


def test_bad_style_raises() -> None:
    with pytest.raises(ValueError, match="p_slip"):
        TeacherStyle(p_slip=1.5)
    with pytest.raises(ValueError, match="p_abandon"):
        TeacherStyle(p_abandon=0.6, p_slip=0.6)
    with pytest.raises(ValueError, match="n_checks"):
        TeacherStyle(n_checks=(3, 1))
