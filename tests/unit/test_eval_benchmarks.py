"""Benchmark loading through the configs: gold formats, prompts, multiple choice, bad input."""
from __future__ import annotations

import json

import pytest

from dlcot.config import compose, list_options
from dlcot.data.benchmarks import format_prompt, load_benchmark
from dlcot.errors import ConfigError
from dlcot.records import Problem


def load(name: str, *overrides: str, limit: int | None = None):
    cfg = compose("eval", [f"benchmark={name}", *overrides])
    return load_benchmark(cfg.eval.benchmark, data=cfg.data, seed=cfg.seed, limit=limit)


@pytest.mark.parametrize("name", list_options("benchmark"))
def test_every_benchmark_option_composes(name):
    cfg = compose("eval", [f"benchmark={name}"])
    assert cfg.eval.benchmark.name == name
    assert cfg.eval.benchmark.path or cfg.eval.benchmark.hub_name or cfg.eval.benchmark.kind in ("synthetic", "heldout")


def test_unknown_benchmark_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown benchmark 'nope'.*gsm8k.*math500"):
        compose("eval", ["benchmark=nope"])


def test_gsm8k_hashes_and_math_boxed_gold_are_read(shared_data):
    gsm, rejects, source = load("gsm8k", limit=3)
    raw = [json.loads(line) for line in (shared_data / "problems/gsm8k/test.jsonl").read_text().splitlines()[:3]]
    assert not rejects and source.endswith("gsm8k/test.jsonl")
    assert [p.gold_answer for p in gsm] == ["18", "3", "70000"]
    assert all(r["answer"].rstrip().endswith(f"#### {g}") for r, g in zip(raw, ["18", "3", "70000"], strict=True))
    assert gsm[0].problem.startswith("Janet")
    math, _, _ = load("math500", limit=2)
    assert math[0].id == "test/precalculus/807.json"
    assert math[0].gold_answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert (math[0].extra["subject"], math[0].extra["level"]) == ("Precalculus", 2)


def test_boxed_gold_in_a_local_file_is_unwrapped(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps({"question": "x?", "answer": "$\\boxed{\\frac{3\\sqrt{3}}{4}}$"}) + "\n")
    probs, _, _ = load("gsm8k", f"eval.benchmark.path={path}")
    assert probs[0].gold_answer == "\\frac{3\\sqrt{3}}{4}"


def test_rows_without_gold_are_counted_rejects(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text("\n".join([json.dumps({"question": "a?", "answer": "#### 5"}),
                               json.dumps({"question": "b?"}),
                               json.dumps({"question": "c?", "answer": "  "}), "{not json"]) + "\n")
    probs, rejects, _ = load("gsm8k", f"eval.benchmark.path={path}")
    assert [p.gold_answer for p in probs] == ["5"]
    assert sorted(r.reason for r in rejects) == ["bad_json", "empty_gold", "missing_field"]


def test_a_benchmark_with_no_usable_source_is_a_clear_error():
    with pytest.raises(ConfigError, match="aime25.*could not be loaded|aime25.*no local file"):
        load("aime25")


def test_aime_prompt_does_not_repeat_the_boxed_instruction(shared_data):
    cfg = compose("eval", ["benchmark=aime24"])
    probs, _, _ = load("aime24", limit=1)
    prompt = format_prompt(cfg.eval.benchmark.prompt_template, probs[0])
    assert prompt.count("\\boxed{}") == 1 and prompt == probs[0].problem
    other = Problem("x", "What is 1+1?", "2")
    assert format_prompt(cfg.eval.benchmark.prompt_template, other) == (
        "What is 1+1?\n\nPlease reason step by step, and put your final answer within \\boxed{}.")


def test_multiple_choice_shuffles_options_and_grades_letters(tmp_path):
    rows = [{"Record ID": f"r{i}", "Question": f"Q{i}?", "Correct Answer": f"right{i}",
             "Incorrect Answer 1": "w1", "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3",
             "High-level domain": "Physics"} for i in range(8)]
    path = tmp_path / "gpqa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    probs, rejects, _ = load("gpqa_diamond", f"eval.benchmark.path={path}")
    assert not rejects and len(probs) == 8
    for p in probs:
        options = dict(line.split(") ", 1) for line in p.extra["choices"].splitlines())
        assert sorted(options) == ["A", "B", "C", "D"] and options[p.gold_answer] == f"right{p.id[1:]}"
    assert len({p.gold_answer for p in probs}) > 1  # the correct option is not always in one place
    again, _, _ = load("gpqa_diamond", f"eval.benchmark.path={path}")
    assert [p.gold_answer for p in again] == [p.gold_answer for p in probs]  # seeded by id
    prompt = format_prompt(compose("eval", ["benchmark=gpqa_diamond"]).eval.benchmark.prompt_template, probs[0])
    assert prompt.startswith("Q0?\n\nA) ") and "letter of your final answer" in prompt


def test_synthetic_benchmark_is_the_held_out_tail():
    cfg = compose("eval", ["benchmark=synthetic", "data.n_problems=5"])
    probs, rejects, source = load_benchmark(cfg.eval.benchmark, data=cfg.data, seed=0, limit=3)
    from dlcot.data.sources import synthetic_problems

    train_ids = {p.id for p in synthetic_problems(cfg.data, 0, count=5)}
    assert len(probs) == 3 and not rejects and not train_ids & {p.id for p in probs}
    assert "problems 5..7" in source
