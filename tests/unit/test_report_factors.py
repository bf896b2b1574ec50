"""`dlcot report` in the key-factors paper's table shape: rows students, columns the swept factor, cells accuracy."""
from __future__ import annotations

import json
from pathlib import Path

from dlcot.orchestrate.report_factors import collect, report, tables
from dlcot.records import atomic_write_json


def _run(root: Path, name: str, student: str, acc: float, *, teacher="gpt4o", fmt="cot", level=3,
         bench="kf_svamp_heldout") -> None:
    model = root / name / "sft"
    atomic_write_json(model / "train_stats.json", {"student": student, "source": {
        "teacher": teacher, "format": fmt, "granularity": level, "entry": f"{teacher}-{fmt}-{level}"}})
    atomic_write_json(root / name / "eval" / "metrics.json", {"model": str(model), "benchmark": bench,
                                                              "accuracy": acc, "n": 50})


def test_granularity_sweep_is_students_by_level_with_answer_only_last(tmp_path):
    _run(tmp_path, "a", "bloom_560m", 0.10, level=6)
    _run(tmp_path, "b", "bloom_560m", 0.30, level=1)
    _run(tmp_path, "c", "llama3_2_1b_base", 0.42, level=1)
    _run(tmp_path, "d", "llama3_2_1b_base", 0.2, teacher=None, fmt="answer_only", level=None)
    _run(tmp_path, "e", "llama3_2_1b_base", 0.5, level=6)
    atomic_write_json(tmp_path / "x" / "eval" / "metrics.json", {"model": None, "accuracy": 1.0})  # not key factors
    lines = tables(collect(tmp_path)).splitlines()
    assert lines[0] == "### kf_svamp_heldout: accuracy (%) on 50 problems"
    assert lines[2] == "| student | L1 | L6 | answer-only |"
    assert lines[4] == "| llama3_2_1b_base | 42.0 | 50.0 | 20.0 |"  # the paper's student order: Llama first
    assert lines[5] == "| bloom_560m | 30.0 | 10.0 |  |"


def test_teacher_sweep_labels_columns_by_teacher_and_human_has_no_level(tmp_path):
    for i, (teacher, level, acc) in enumerate([("human", None, 0.25), ("gpt4o", 3, 0.5), ("gemini_1_5_flash", 3, 0.4)]):
        _run(tmp_path, str(i), "gemma_2b_base", acc, teacher=teacher, level=level)
    md = report(tmp_path)
    assert "| student | human | gpt4o | gemini_1_5_flash |" in md
    assert "| gemma_2b_base | 25.0 | 50.0 | 40.0 |" in md


def test_format_sweep_and_one_table_per_benchmark(tmp_path):
    for fmt, acc in [("sym", 0.1), ("cot", 0.2), ("rar", 0.3), ("bsm", 0.4)]:
        _run(tmp_path, fmt, "bloom_1b1", acc, fmt=fmt)
    _run(tmp_path, "g", "bloom_1b1", 0.05, bench="kf_gsm8k_test")
    md = report(tmp_path)
    assert ("| student | cot | bsm | rar | sym |\n|---|---:|---:|---:|---:|\n"
            "| bloom_1b1 | 20.0 | 40.0 | 30.0 | 10.0 |") in md
    assert md.count("### ") == 2 and "### kf_gsm8k_test" in md
    assert json.loads(json.dumps(collect(tmp_path)))  # plain rows


def test_no_key_factors_runs_no_table(tmp_path):
    atomic_write_json(tmp_path / "e" / "metrics.json", {"model": str(tmp_path / "m"), "accuracy": 0.5})
    assert report(tmp_path) == ""
