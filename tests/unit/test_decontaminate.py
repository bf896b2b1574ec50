"""`dlcot decontaminate`: open-r1's normalised word 8-gram test against real benchmark problems, every drop in
rejected.jsonl, and the stage chained before training by `dlcot run`."""
from __future__ import annotations

import json

import pytest

from dlcot.commands import run_command
from dlcot.data.decontaminate import Index
from dlcot.errors import ConfigError

BENCH = "Find the number of ordered pairs of positive integers whose product is exactly one hundred."


def test_ngram_overlap_is_normalised_and_needs_n_words():
    idx = Index(8)
    idx.add("b", "b/1", BENCH)
    idx.add("b", "b/2", "Compute 2+2.")
    hit = idx.match("Homework:   FIND the number of ORDERED pairs of positive integers, please.")
    assert hit == ("b", "b/1", "find the number of ordered pairs of positive")  # "integers," != "integers"
    assert idx.match("so: the number of ordered pairs of positive numbers") is None  # 7 words in a row only
    assert idx.match("the number of ordered pairs of positive integers whose product is 7")[:2] == ("b", "b/1")
    assert idx.match("compute  2+2.")[:2] == ("b", "b/2")  # too short for an 8-gram: exact match
    assert idx.match("Compute 2+3.") is None


def write(path, rows):
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.shared_data
def test_command_drops_benchmark_problems_with_reasons(tmp_path, shared_data):
    math500 = [json.loads(line) for line in (shared_data / "problems/math500/test.jsonl").read_text().splitlines()]
    leaked = {"id": "leak", "problem": "  " + math500[7]["problem"].upper(), "reasoning": "r", "gold_answer": "1",
              "teacher": "t"}
    clean = [{"id": f"c{i}", "problem": f"Tom has {i} red apples and buys {i + 3} more apples at the market "
              "today. How many does he have now?", "reasoning": "add", "gold_answer": str(2 * i + 3)}
             for i in range(3)]
    src = write(tmp_path / "traces.jsonl", [leaked, *clean, "not json\n", {"id": "x", "problem": "no reasoning"}])
    out = run_command("decontaminate", [f"input={src}", f"output={tmp_path / 'out'}",
                                        "decontaminate.benchmarks=[math500,aime24]"])
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["n_input"], stats["n_kept"], stats["n_rejected"]) == (6, 3, 3)
    assert stats["reject_reasons"] == {"contaminated": 1, "bad_json": 1, "missing_field": 1}
    assert stats["contaminated_by_benchmark"] == {"math500": 1} and set(stats["benchmarks"]) == {"math500", "aime24"}
    kept = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert kept == clean  # written back as read
    drop = next(json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines() if "leak" in line)
    assert (drop["reason"], drop["benchmark"], drop["benchmark_id"]) == ("contaminated", "math500",
                                                                         math500[7]["unique_id"])
    assert len(drop["overlap"].split()) == 8 and drop["overlap"] in " ".join(math500[7]["problem"].lower().split())


def test_bad_settings_fail_before_any_output(tmp_path):
    src = write(tmp_path / "t.jsonl", [{"id": "a", "problem": "p", "reasoning": "r", "gold_answer": "1"}])
    with pytest.raises(ConfigError, match="unknown benchmark 'math5000'"):
        run_command("decontaminate", [f"input={src}", f"output={tmp_path / 'o'}",
                                      "decontaminate.benchmarks=[math5000]"])
    with pytest.raises(ConfigError, match="ngram"):
        run_command("decontaminate", [f"input={src}", f"output={tmp_path / 'o'}", "decontaminate.ngram=0"])
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # a chain with a tiny SFT and eval: ~1 min
@pytest.mark.shared_data
def test_run_chains_decontamination_before_training(tmp_path, shared_data):
    math500 = [json.loads(line) for line in (shared_data / "problems/math500/test.jsonl").read_text().splitlines()]
    gen = "<think>\nLet me add them up carefully.\n</think>\n\nSo \\boxed{{{}}}."
    rows = [{"uuid": f"u{i}", "problem": p, "answer": str(i), "generations": [gen.format(i)],
             "correctness_math_verify": [True], "is_reasoning_complete": [True]}
            for i, p in enumerate([math500[3]["problem"], "What is seven plus eight, written as a number in digits?",
                                   "Add twelve and thirty and report the total as a plain integer value."])]
    src = write(tmp_path / "openr1.jsonl", rows)
    run_command("run", ["recipe=openr1_decontaminated", f"data.path={src}", f"runs_dir={tmp_path / 'runs'}",
                        f"output={tmp_path / 'chain'}", "student=tiny_qwen2", "train=sft_cpu_tiny",
                        "train.max_steps=2", "decontaminate.benchmarks=[math500]", "eval.limit=2",
                        "engine.max_new_tokens=8"])
    decon = json.loads((tmp_path / "chain" / "decon" / "stats.json").read_text())
    assert (decon["n_input"], decon["n_kept"], decon["contaminated_by_benchmark"]) == (3, 2, {"math500": 1})
    train = json.loads((tmp_path / "chain" / "sft" / "train_stats.json").read_text())
    assert train["n_input"] == 2 and train["data"] == str(tmp_path / "chain" / "decon" / "traces.jsonl")
    assert (tmp_path / "chain" / "eval" / "metrics.json").is_file()
