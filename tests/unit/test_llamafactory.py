"""LLaMA-Factory data (the key-factors release): entries by name or by teacher/format/level, gold joined on the
problem text or read from `The answer is N`, held-out problems out of every file, bad input named or counted.

Fixtures are small files in the released format (JSON arrays of {instruction, output} + dataset_info.json); the
tests marked shared_data read the real release in ../shared/data/keyfactors.
"""
from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dlcot.config import compose
from dlcot.data.llamafactory import (
    entry_name,
    heldout_problems,
    load_entry,
    problem_key,
    read_array,
    read_traces,
    selected_entry,
    stated_answer,
    training_traces,
)
from dlcot.errors import ConfigError, RecordError
from dlcot.records import Reject, Trace
from tests.llamafactory_fixtures import GOLD, PROBLEMS, release, write_array


@functools.cache
def _base():
    return compose("train", ["data=kf_svamp", "teacher=gpt4o"])


def _cfg(info: Path, *overrides: str):
    """The kf_svamp data group on `info`, composed once; `teacher=X` sets the teacher's name (all the reader uses)."""
    dots = [f"teacher.name={o.split('=', 1)[1]}" if o.startswith("teacher=") else o for o in overrides]
    return OmegaConf.merge(_base(), OmegaConf.from_dotlist([f"data.dataset_info={info}", "data.heldout=2", *dots]))


def _split(records):
    records = list(records)
    return [r for r in records if isinstance(r, Trace)], [r for r in records if isinstance(r, Reject)]


# ------------------------------------------------------------------------------------------- selecting entries
@pytest.mark.parametrize("overrides,entry,level", [
    (["cot.granularity=2"], "SVAMP_ChatGPT_level2", 2),
    (["teacher=gemini_1_5_flash", "cot.granularity=6"], "SVAMP_gemini_level6", 6),
    (["teacher=human", "cot.granularity=3"], "SVAMP_human", None),  # no levels released: ignored, recorded as none
    (["cot.format=answer_only"], "SVAMP_only_ans", None),
    (["cot.format=sym", "cot.granularity=5"], "svamp_gemma_sym", 5),
    (["data.entry=SVAMP_human"], "SVAMP_human", None),
])
def test_entry_chosen_by_teacher_format_level(overrides, entry, level):
    cfg = _cfg(Path("unused"), *overrides)
    name, by_level = entry_name(cfg.data, cfg.teacher.name, cfg.cot)
    assert name == entry
    assert (level is not None) == by_level


def test_entry_without_a_release_or_a_level_is_a_config_error():
    with pytest.raises(ConfigError, match="needs a level: set cot.granularity"):
        entry_name(_base().data, "gpt4o", _base().cot)
    cfg = _cfg(Path("unused"), "cot.format=bsm", "cot.granularity=4")
    with pytest.raises(ConfigError, match=r"no released entry for teacher=gpt4o cot.format=bsm cot.granularity=4"):
        entry_name(cfg.data, cfg.teacher.name, cfg.cot)


def test_unknown_entry_names_the_closest_and_bad_files_are_named(tmp_path):
    info = release(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown dataset 'SVAMP_ChatGPT_level7'.*closest: SVAMP_ChatGPT_level"):
        load_entry(info, "SVAMP_ChatGPT_level7")
    with pytest.raises(RecordError, match="nope.json: no such file"):
        read_array(load_entry(info, "missing_file").path)
    (tmp_path / "obj.json").write_text('{"instruction": "x", "output": "y"}')
    with pytest.raises(RecordError, match=r"obj.json: expected a JSON array of rows.*got a dict"):
        read_array(tmp_path / "obj.json")
    (tmp_path / "lines.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    with pytest.raises(RecordError, match="lines.jsonl: not a JSON file"):
        read_array(tmp_path / "lines.jsonl")
    with pytest.raises(ConfigError, match="no dataset_info.json"):
        load_entry(tmp_path / "nowhere", "x")


def test_bad_rows_are_counted_rejects_naming_file_row_and_field(tmp_path):
    info = release(tmp_path)
    rows = [{"instruction": PROBLEMS[0], "output": "The answer is 7"}, {"output": "The answer is 3"},
            {"instruction": PROBLEMS[1], "output": 15}, "not an object",
            {"instruction": "An unknown problem?", "output": "no number stated"}]
    write_array(tmp_path, "bad.json", rows)
    table = json.loads(info.read_text())
    table["bad"] = {"file_name": "bad.json"}
    info.write_text(json.dumps(table))
    kept, rejects = _split(read_traces(load_entry(info, "bad")))
    assert [t.id for t in kept] == ["bad/0"]
    by_id = {r.id: r for r in rejects}
    assert by_id["bad/1"].reason == "missing_field" and "bad.json: row bad/1: field 'instruction' missing" in \
        by_id["bad/1"].detail
    assert by_id["bad/2"].reason == "bad_type" and "field 'output' must be a string, got int" in by_id["bad/2"].detail
    assert by_id["bad/3"].reason == "bad_json" and "row 3" in by_id["bad/3"].detail
    assert by_id["bad/4"].reason == "no_gold"
    assert len(kept) + len(rejects) == len(rows)


# ------------------------------------------------------------------------------------------- gold and held-out
@pytest.mark.parametrize("text,answer", [
    ("Add them. The answer is 145", "145"), ("The answer is: $1,200.50.", "1200.50"),
    ("... The answer is 145.0", "145"),
    ("The answer is 5 - 3 = 2", "2"), ("the answer is -7 apples.", "-7"), ("The answer is 3/4.", "3/4"),
    ("It is 12. The answer is 12. Then more text with 40", "12"), ("no statement, 42", None),
])
def test_stated_answer(text, answer):
    assert stated_answer(text) == answer


def test_gold_joins_on_problem_text_and_mismatches_are_kept_and_flagged(tmp_path):
    info = release(tmp_path)
    cfg = _cfg(info, "cot.granularity=2", "data.heldout=0")
    path, records, meta = training_traces(cfg)
    kept, rejects = _split(records)
    assert path.name == "l2.json" and not rejects and len(kept) == 6
    assert [t.gold_answer for t in kept] == GOLD  # from only.json, whose problem text differs in whitespace only
    assert [t.extra["answer_mismatch"] for t in kept] == [False, True, False, False, False, False]
    assert kept[1].reasoning == "A wrong sum. The answer is 99" and kept[1].gold_answer == "15"
    assert meta == {"dataset": "kf_svamp", "entry": "SVAMP_ChatGPT_level2", "file": str(path), "teacher": "gpt4o",
                    "format": "cot", "granularity": 2, "gold_entry": "SVAMP_only_ans", "heldout": 0}


def test_without_a_gold_entry_gold_is_the_stated_answer(tmp_path):
    info = release(tmp_path)
    cfg = _cfg(info, "cot.granularity=2", "data.heldout=0", "data.gold_entry=null")
    kept, _ = _split(training_traces(cfg)[1])
    assert [t.gold_answer for t in kept] == ["7", "99", "14", "11", "7", "16"]


def test_heldout_problems_leave_every_file_and_are_the_benchmark(tmp_path):
    info = release(tmp_path)
    problems, source = heldout_problems(_cfg(info).data)
    held = {problem_key(p.problem) for p in problems}
    assert len(problems) == 2 and "SVAMP_only_ans" in source
    assert all(p.gold_answer == GOLD[[problem_key(q) for q in PROBLEMS].index(problem_key(p.problem))]
               for p in problems)
    for overrides in (["cot.granularity=1"], ["cot.granularity=2"], ["teacher=human"], ["cot.format=answer_only"]):
        kept, rejects = _split(training_traces(_cfg(info, *overrides))[1])
        assert {problem_key(t.problem) for t in kept}.isdisjoint(held), overrides
        assert Counter(r.reason for r in rejects) == {"heldout": 2}, overrides
    # the same problems whatever the order of the gold file's rows
    only = json.loads((tmp_path / "only.json").read_text())
    (tmp_path / "only.json").write_text(json.dumps(only[::-1]))
    assert {problem_key(p.problem) for p in heldout_problems(_cfg(info).data)[0]} == held
    with pytest.raises(ConfigError, match="data.heldout=9 > the 6 problems"):
        heldout_problems(_cfg(info, "data.heldout=9").data)


def test_answer_only_and_human_entries_record_no_level(tmp_path):
    info = release(tmp_path)
    assert selected_entry(_cfg(info, "cot.format=answer_only", "cot.granularity=3"))[1]["granularity"] is None
    meta = selected_entry(_cfg(info, "teacher=human", "cot.granularity=3"))[1]
    assert (meta["teacher"], meta["granularity"], meta["entry"]) == ("human", None, "SVAMP_human")


# ------------------------------------------------------------------------------------------- the real release
@pytest.mark.shared_data
def test_real_release_every_svamp_entry_reads_with_gold_and_holds_out_the_same_problems(shared_data):
    info = shared_data / "keyfactors" / "dataset_info.json"
    if not info.is_file():
        pytest.skip("../shared/data/keyfactors not found")
    cfg = _cfg(info, "data.heldout=100")
    held = {problem_key(p.problem) for p in heldout_problems(cfg.data)[0]}
    assert len(held) == 100
    words = {}
    for key, pattern in cfg.data.entries.items():
        teacher, fmt, *level = key.split("/")
        levels = level or (range(1, 7 if teacher != "llama3_70b_instruct" else 5) if "{level}" in pattern else [None])
        for lv in levels:
            run = _cfg(info, "data.heldout=100", f"teacher={teacher if teacher != '*' else 'gpt4o'}",
                       f"cot.format={fmt}", f"cot.granularity={lv if lv is not None else 'null'}")
            path, records, meta = training_traces(run)
            kept, rejects = _split(records)
            assert Counter(r.reason for r in rejects) == {"heldout": 100}, meta["entry"]  # every row has a gold
            assert len(kept) in (599, 600) and all(t.gold_answer for t in kept), meta["entry"]
            assert held.isdisjoint(problem_key(t.problem) for t in kept), meta["entry"]
            words[meta["entry"]] = sum(len(t.reasoning.split()) for t in kept) / len(kept)
    gpt = [words[f"SVAMP_ChatGPT_level{k}"] for k in range(1, 7)]
    assert gpt == sorted(gpt) and gpt[0] < 40 < 75 < gpt[5]  # the release's levels: ~35 → ~81 words
    assert words["SVAMP_only_ans"] == 1.0 and words["SVAMP_human"] < 15


@pytest.mark.shared_data
def test_every_documented_sweep_line_selects_released_entries_for_every_job(shared_data):
    """The `dlcot sweep` lines in recipes/key_factors/*.yaml: every job names known students and its (teacher,
    format, level) maps to an entry of the release that exists on disk."""
    from dlcot.config import CONF_DIR, RECIPES_DIR
    from dlcot.orchestrate.sweep import expand

    info = shared_data / "keyfactors" / "dataset_info.json"
    if not info.is_file():
        pytest.skip("../shared/data/keyfactors not found")
    recipes = [p for p in sorted((RECIPES_DIR / "key_factors").glob("*.yaml")) if "key_factors/svamp" in p.read_text()]
    lines = [line.split("dlcot sweep ", 1)[1].split() for path in recipes  # those that read the release
             for line in path.read_text().splitlines() if line.startswith("#   dlcot sweep ")]
    assert len(lines) >= 6
    n_jobs = 0
    for args in lines:
        fixed, jobs = expand(args)
        recipe = next(a.split("=", 1)[1] for a in fixed if a.startswith("recipe="))
        defaults = compose("train", [f"recipe={recipe}"])
        assert defaults.data.source == "llamafactory"
        for job in jobs:
            settings = dict(ov.split("=", 1) for ov in [*fixed, *job])
            assert (CONF_DIR / "student" / f"{settings.get('student', defaults.student.name)}.yaml").is_file()
            cot = OmegaConf.merge(defaults.cot, OmegaConf.from_dotlist(
                [f"{k[4:]}={v}" for k, v in settings.items() if k.startswith("cot.")]))
            name, _ = entry_name(defaults.data, settings.get("teacher", defaults.teacher.name), cot)
            assert load_entry(info, name).path.is_file(), (args, job, name)
            n_jobs += 1
    assert n_jobs > 60


def test_heldout_benchmark_is_read_through_the_data_group(tmp_path):
    from dlcot.data.benchmarks import load_benchmark

    info = release(tmp_path)
    cfg = _cfg(info)
    bench = compose("eval", ["benchmark=kf_svamp_heldout"]).eval.benchmark
    probs, rejects, source = load_benchmark(bench, data=cfg.data, seed=0, limit=None)
    assert [p.id for p in probs] == [p.id for p in heldout_problems(cfg.data)[0]] and len(probs) == 2
    assert not rejects and "held-out problems of SVAMP_only_ans" in source
    assert load_benchmark(bench, data=cfg.data, seed=0, limit=1)[0] == probs[:1]
    with pytest.raises(ConfigError, match="benchmark kind heldout needs a data group with held-out problems"):
        load_benchmark(bench, data=_cfg(info, "data.heldout=0").data, seed=0)


def test_gold_file_with_two_answers_for_one_problem_is_an_error(tmp_path):
    from dlcot.data.llamafactory import gold_table

    info = release(tmp_path)
    only = json.loads((tmp_path / "only.json").read_text())
    (tmp_path / "only.json").write_text(json.dumps([*only, {"instruction": PROBLEMS[2], "output": "15"}]))
    with pytest.raises(RecordError, match=r"only.json: row 6: problem .* has two gold answers \('14', '15'\)"):
        gold_table(load_entry(info, "SVAMP_only_ans"))
