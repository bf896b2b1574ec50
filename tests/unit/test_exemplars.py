"""`cot.granularity=k` shows an engine teacher one released CoT of level k (dlcot.data.exemplars), never the problem
itself, and `dlcot generate` keeps the teacher's answer in the release's form (no <think> block needed)."""
from __future__ import annotations

import json

import pytest
from test_llamafactory import PROBLEMS, release

from dlcot.cli import run_command
from dlcot.config import compose
from dlcot.data.exemplars import exemplar_for, exemplar_prompt, uses_exemplar
from dlcot.errors import ConfigError


def _cot(info, *overrides: str):
    return compose("generate", [f"cot.exemplar_info={info}", *overrides]).cot


def test_the_exemplar_is_a_released_row_of_the_level_and_never_the_problem(tmp_path):
    info = release(tmp_path)
    cot = _cot(info, "cot.granularity=2")
    assert uses_exemplar(cot) and cot.exemplar_entry == "SVAMP_ChatGPT_level{level}"
    rows = json.loads((tmp_path / "l2.json").read_text())
    assert exemplar_for(cot, "Some other problem?") == (rows[0]["instruction"], rows[0]["output"])
    assert exemplar_for(cot, "  " + PROBLEMS[0]) == (rows[1]["instruction"], rows[1]["output"])  # not itself
    prompt = exemplar_prompt(cot, "What is 1 + 1?", lambda q: q)
    assert prompt.index(rows[0]["output"]) < prompt.index("What is 1 + 1?") and prompt.endswith("Answer:")
    assert not uses_exemplar(_cot(info, "cot.granularity=2", "cot.guide=instruction"))
    assert not uses_exemplar(_cot(info))  # no level: the teacher's own CoT
    with pytest.raises(ConfigError, match="cot.guide='shown'"):
        uses_exemplar(_cot(info, "cot.granularity=2", "cot.guide=shown"))


def test_generate_prompts_with_the_levels_exemplar_and_keeps_the_answer_as_is(tmp_path):
    info = release(tmp_path)
    probs = tmp_path / "p.jsonl"
    probs.write_text(json.dumps({"id": "a", "problem": "Tom has 2 pens and buys 2. How many?", "answer": "4"}) + "\n")
    rules = ["engine.rules.default='Two. The answer is 4'",  # level 1's exemplar is short; level 2's reaches here:
             "+engine.rules.starts='Tom starts with 2 pens, then buys 2 more: 2 + 2 = 4. The answer is 4'"]
    args = [f"input={probs}", "teacher=gpt4o", "engine=scripted", *rules, f"cot.exemplar_info={info}"]
    by_level = {}
    for level in (1, 2):
        out = run_command("generate", [*args, f"cot.granularity={level}", f"output={tmp_path / str(level)}"])
        (trace,) = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
        assert trace["cot_granularity"] == level and trace["response"] == ""
        by_level[level] = trace["reasoning"]
    assert by_level == {1: "Two. The answer is 4",
                        2: "Tom starts with 2 pens, then buys 2 more: 2 + 2 = 4. The answer is 4"}
