"""The offline segmenter: contract of its output, the hand-built trace, synthetic truth, real gold, bad input."""
from __future__ import annotations

import json

import pytest

from dlcot.data.synthetic import synthetic_traces
from dlcot.enhance.cues import split_units, stated_value
from dlcot.enhance.reading import cue_kind
from dlcot.enhance.segment import segment
from dlcot.records import Segmentation
from tests.benchmarks.segmentation_metrics import score
from tests.enhance_fixtures import SEGS, TEXT, check_contract


def test_hand_built_trace_structure():
    seg = segment(TEXT, "14", "hand")
    check_contract(seg, TEXT)
    got = [(s.kind, s.start, s.end, s.approach) for s in seg.segments]
    assert got == [(s.kind, s.start, s.end, s.approach) for s in SEGS]
    assert [s.answer for s in seg.segments if s.kind == "approach"] == ["20", "14", "20", "14"]
    assert TEXT[:seg.first_answer_end].endswith("So the answer is 20.")


def test_a_wait_that_fixes_a_slip_continues_the_approach():
    text = ("So I need 7 * 8 + 1.\n\n"
            "Let me compute: 7 * 8 = 54.\n\n"
            "Wait, 7 * 8 is 56, not 54. So 56 + 1 = 57.\n\n"
            "So the answer is 57.\n\n"
            "Let me double-check: 56 + 1 = 57. Yes.\n\n"
            "Therefore, the answer is \\boxed{57}.")
    seg = segment(text, "57")
    check_contract(seg, text)
    assert [s.kind for s in seg.segments] == ["restatement", "approach", "verification", "conclusion"]
    assert seg.segments[1].answer == "57"


@pytest.mark.parametrize("text", [
    "",
    "   \n\n  ",
    "Just one paragraph with the answer 5. So the answer is 5.",
    "x" * 120_000,  # 100k+ characters, no sentence breaks, no spaces
    ("word " * 30_000).strip(),  # 150k characters, no sentence breaks
    "这是一个问题。我们计算 2 + 2 = 4。\n\n所以答案是 4。\n\n因此，答案是 \\boxed{4}。",  # non-Latin
    "<think>\n\nSo I start. Let me compute 2 + 2 = 4.\n\nWait, maybe",  # unclosed thought, cut off mid-way
    "\\[\n\\]\n\n$$ $$\n\n\\boxed{",  # broken math
])
def test_bad_input_never_crashes_and_keeps_the_contract(text):
    seg = segment(text, "4")
    check_contract(seg, text)


def test_long_input_is_split_into_bounded_units():
    text = ("word " * 30_000).strip()
    units = split_units(text)
    assert "".join(u.text for u in units) == text
    assert max(len(u.text) for u in units) <= 4 * 1200 + 1


def test_units_tile_the_text_and_split_mid_paragraph_turns():
    text = ("<|begin_of_thought|>\n\nSo I have a problem.\n\nSo, if every third number counts, the probability "
            "should be 1/3. But wait, that doesn't match 33/100.\n\nDone.")
    units = split_units(text)
    assert "".join(u.text for u in units) == text
    assert units[0].text.startswith("<|begin_of_thought|>") and "So I have" in units[0].text
    assert any(u.text.startswith("But wait") for u in units)


@pytest.mark.parametrize("sentence,value", [
    ("So, probability = 33 / 100", "33 / 100"),
    ("Therefore, the probability is 33/100.", "33/100"),
    ("So, \\( x = 5 \\) is a valid solution.", "5"),
    ("Therefore, \\( f^{-1}(f^{-1}(6)) = f^{-1}(2) = 1 \\).", "1"),
    ("So, the smallest sum is 129, achieved when \\( a = 1 \\).", "129"),
    ("So the answer is \\boxed{52}.", "52"),
    ("That gives 159 as the answer.", "159"),
    ("Therefore, the value of $\\lceil{\\sqrt{20}}\\rceil^2$ is 25.", "25"),
    ("So, the solutions are \\[ x = 1 \\quad \\text{or} \\quad x = 5 \\]", None),  # a list of candidates
    ("Therefore, the answer should be 42 inches.", "42"),
    ("The polar coordinates are (3, π/2).", "(3, π/2)"),
    ("So, $14.40 * 2.5 = $36.", "36"),
    ("I think $$\\frac{\\sqrt{3}}{3}$$ is the simplified form.", "\\frac{\\sqrt{3}}{3}"),
    ("Let me think about this.", None),
])
def test_stated_value(sentence, value):
    assert stated_value(sentence) == value


def test_synthetic_teacher_truth_is_recovered():
    traces = list(synthetic_traces(120, seed=3))
    rep = score((t.reasoning, segment(t.reasoning, t.gold_answer, t.id), Segmentation.from_dict(t.segmentation))
                for t in traces)
    assert rep.kind_agreement >= 0.95
    assert rep.start_f1 >= 0.95
    assert rep.first_answer_accuracy >= 0.95


@pytest.mark.shared_data
def test_gold_dev_targets(shared_data):
    """Issue 3's bar on the real gold dev set (answer strings only; outcomes are scored in test_enhance_label)."""
    traces = {}
    with (shared_data / "longcot" / "skyt1_math500.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            traces[row["id"]] = row
    pairs = []
    with (shared_data / "gold" / "segments_dev.jsonl").open() as fh:
        for line in fh:
            gold = Segmentation.from_dict(json.loads(line))
            row = traces[gold.id]
            pred = segment(row["reasoning"], row["gold_answer"], gold.id)
            check_contract(pred, row["reasoning"])
            pairs.append((row["reasoning"], pred, gold))
    rep = score(pairs)
    assert rep.kind_agreement >= 0.80
    assert rep.start_f1 >= 0.70
    assert rep.first_answer_accuracy >= 0.80


def test_a_solution_written_after_the_thought_is_conclusion():
    """R1-style traces close the thought and then write the solution out cleanly: that write-up restates steps
    ("Alternatively", checks, equations) but is conclusion, never verification or a new approach."""
    thought = ("We need 7 * 8 + 1.\n\n"
               "Let me compute: 7 * 8 = 56, so 56 + 1 = 57.\n\n"
               "Wait, let me double-check: 56 + 1 = 57. Yes.\n\n"
               "So the answer is \\boxed{57}.\n</think>\n\n")
    written = ("To solve this, multiply first:\n\n"
               "Alternatively, one could add 7 eight times: 7 + 7 + 7 + 7 + 7 + 7 + 7 + 7 = 56, then 56 + 1 = 57.\n\n"
               "Let me verify: 57 - 1 = 56 = 7 * 8.\n\n"
               "**Final Answer**\n\\boxed{57}")
    text = thought + written
    seg = segment(text, "57")
    check_contract(seg, text)
    conclusion = seg.segments[-1]
    assert conclusion.kind == "conclusion" and conclusion.start <= text.index("So the answer is")
    assert not [s.kind for s in seg.segments if s.start >= len(thought)]  # the write-up lies inside it
    # without the tag the same text reads as more thought: the checks run on and only the last lines conclude
    untagged = segment(text.replace("\n</think>", ""), "57")
    assert untagged.segments[-1].start > len(thought) and untagged.segments[-2].kind == "verification"


def test_a_problem_quoted_after_a_colon_is_restatement():
    """A trace that announces a quotation ("I need to compute this expression:") and copies the problem out on
    its own lines restates it there; a bare formula after a paragraph that does not announce one is work."""
    body = ("Let me start with the inner part: 1 + 3 = 4, then 3 * 4 = 12.\n\n"
            "Then 1 + 12 = 13 and 3 * 13 = 39. So the answer is \\boxed{39}.")
    quoted = "Okay, so I need to compute this expression:\n\nCompute\n\n$3(1 + 3(1 + 3))$\n\n" + body
    seg = segment(quoted, "39")
    check_contract(seg, quoted)
    assert seg.segments[0].kind == "restatement" and seg.segments[0].end == quoted.index("Let me start")
    plain = "Okay, so I need to compute 3(1 + 3(1 + 3)).\n\n$3(1 + 3(1 + 3)) = 3 \\cdot 13$\n\n" + body
    seg = segment(plain, "39")
    assert seg.segments[0].kind == "restatement" and seg.segments[0].end == plain.index("$3(")


@pytest.mark.parametrize(("paragraph", "kind"), [
    ("Now, plug a back into equation (8) to find b.", None),  # solving on
    ("Substituting x = 2 back into the first equation to solve for y: y = 5.", None),
    ("Let me plug x = 3 back into the original equation to check.", "check"),
    ("Plugging it back in: 2(3) + 1 = 7. Correct.", "check"),
])
def test_plugging_a_value_back_checks_only_when_it_does_not_solve_on(paragraph, kind):
    assert cue_kind(split_units(paragraph)[0]) == kind


@pytest.mark.parametrize("text, fragment", [
    # Sky-T1 math500/158: a closing paragraph cut off at the length limit, no tags to show it
    ("So s = 2107.\n\nBut the earlier methods consistently give s = 2107.\n\nAlternatively, I can think", True),
    ("So 1/5 + 2/3 = 13/15.\n\nWait, I already did that.\n\nIf Louis eats 1/5 and Jack eats 2/3", True),
    ("So the answer is 145.\n\nI think that's correct.", False),   # a closer is a finished sentence
    ("So the answer is 145.\n\n**Final Answer**\n\n\\[ \\boxed{145} \\]", False),
    ("Half of 290 is 145. The answer is 145", False),  # key-factors style: the statement ends the text
    ("Let me add: 3 + 4 = 7, so the answer is 7", False),
])
def test_a_text_that_stops_mid_sentence_after_its_final_statement_trails_off(text, fragment):
    from dlcot.enhance.cues import final_statement, trails_off

    final, at = final_statement(text)
    assert final is not None
    got = trails_off(text, at)
    assert (got is not None) == fragment and (got is None or text.rstrip().endswith(got))


def test_trailing_off_on_held_out_outputs_flags_only_truncated_ones():
    """The 117 held-out model outputs (tests/data, another source than the Sky-T1 traces the rule was written
    from), each labelled by reading it: no finished output (boxed, prose, or stating no answer) is taken for a
    cut one, and what is flagged was labelled truncated."""
    import gzip

    from dlcot.enhance.cues import final_statement, trails_off
    from tests.benchmarks.bench_grading import HELDOUT_LABELS, HELDOUT_OUTPUTS

    with gzip.open(HELDOUT_OUTPUTS, "rt", encoding="utf-8") as fh:
        outputs = {row["id"]: row["output"] for row in map(json.loads, fh)}
    labels = [json.loads(line) for line in HELDOUT_LABELS.open(encoding="utf-8")]
    kind = {lab["id"]: lab["class"] for lab in labels if lab["source"] == HELDOUT_OUTPUTS.name}
    assert len(outputs) == len(kind) == 117
    flagged = [i for i, text in outputs.items()
               if (at := final_statement(text)[1]) is not None and trails_off(text, at) is not None]
    assert {kind[i] for i in flagged} == {"truncated"}
    assert len(flagged) == 16  # of 57 labelled truncated; the others state nothing or stop at a sentence end
