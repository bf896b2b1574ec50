"""Hub long-CoT datasets as one-word data configs: each adapter on a small fixture written in that dataset's
schema (tests/data/hub/), one trace per generation, rejects with reasons, and streamed + cached Hub reads."""
from __future__ import annotations

import json
import sys
import types
from collections import Counter
from pathlib import Path

import pytest

from dlcot.config import compose
from dlcot.data.sources import hub_cache_path, load_records, traces_file
from dlcot.errors import ConfigError
from dlcot.records import Problem, Reject, Trace

HUB = Path(__file__).resolve().parents[1] / "data" / "hub"


def read(data: str, *overrides: str, kind=Trace):
    cfg = compose("enhance", [f"data={data}", *overrides])
    recs = list(load_records(cfg.data, kind))
    return [r for r in recs if not isinstance(r, Reject)], {r.id: r.reason for r in recs if isinstance(r, Reject)}


def test_openr1_one_trace_per_generation_correct_only():
    traces, rejects = read("openr1_math", f"data.path={HUB / 'openr1_math.jsonl'}")
    assert [t.id for t in traces] == ["u-1/0", "u-2/0", "u-2/1"]  # u-2/0: math-verify no, the Llama judge yes
    assert rejects == {"u-1/1": "incorrect_generation", "u-1/2": "incorrect_generation",
                       "u-3/0": "no_correctness_flags"}
    t = traces[0]
    assert (t.problem, t.reasoning, t.response, t.gold_answer, t.teacher) == (
        "What is 2+3?", "2 plus 3 is 5.", "The sum is \\boxed{5}.", "5", "deepseek-r1")
    assert traces[1].gold_answer == "\\frac{5}{2}" and traces[1].extra["source"] == "cn_k12"


def test_openr1_without_correct_only_keeps_wrong_but_not_unfinished_generations():
    traces, rejects = read("openr1_math", f"data.path={HUB / 'openr1_math.jsonl'}", "data.correct_only=false")
    assert [t.id for t in traces] == ["u-1/0", "u-1/1", "u-2/0", "u-2/1", "u-3/0"]
    assert rejects == {"u-1/2": "incomplete_reasoning"}
    assert traces[1].extra["correct"] is False


@pytest.mark.parametrize("data", ["openthoughts", "bespoke_stratos", "skyt1_17k"])
def test_conversation_datasets(data):
    traces, rejects = read(data, f"data.path={HUB / 'conversations.jsonl'}")
    assert len(traces) == 1
    t = traces[0]
    assert t.problem.endswith("What is 4+4?") and t.reasoning == "Let me add 4 and 4: 8."
    assert t.response == "The total is \\(\\boxed{8}\\)." and t.gold_answer == "8"
    assert t.teacher == ("qwq-32b-preview" if data == "skyt1_17k" else "deepseek-r1")
    assert sorted(rejects.values()) == ["no_assistant_turn", "no_gold", "unclosed_thought"]


def test_openthoughts_metadata_takes_gold_from_the_reference():
    traces, rejects = read("openthoughts_metadata", f"data.path={HUB / 'openthoughts_metadata.jsonl'}")
    assert [(t.problem, t.reasoning, t.response, t.gold_answer, t.extra["domain"]) for t in traces] == [
        ("What is 6*7?", "6 times 7 is 42.", "The product is \\boxed{42}.", "42", "math")]
    assert rejects == {"openthoughts_metadata/1": "no_gold"}


def test_s1k_two_teachers_and_the_shared_gemini_file(shared_data):
    traces, rejects = read("s1k", f"data.path={HUB / 's1k_11.jsonl'}")
    assert [(t.id, t.teacher, t.gold_answer) for t in traces] == [("s1k/0/gemini", "gemini", "128"),
                                                                   ("s1k/0/deepseek", "deepseek", "128")]
    assert traces[1].response == "**Final Answer**\n\\boxed{128}" and not rejects
    traces, rejects = read("s1k", f"data.path={HUB / 's1k_11.jsonl'}", "data.correct_only=true")
    assert [t.teacher for t in traces] == ["gemini"] and rejects == {"s1k/0/deepseek": "incorrect_generation"}
    # the real s1K-style file: Gemini fields only; a proof without a marked final answer has no gold
    traces, rejects = read("s1k", f"data.path={shared_data / 'longcot/s1k_gemini.jsonl'}", "data.teachers=[gemini]")
    assert [(t.id, t.gold_answer) for t in traces] == [
        ("s1k/0/gemini", "a^2 + b^2 \\leq 2"), ("s1k/1/gemini", "128"), ("s1k/3/gemini", "109"),
        ("s1k/4/gemini", "\\frac{1}{n}")]
    assert rejects == {"s1k/2": "no_gold"}
    traces, rejects = read("s1k", f"data.path={shared_data / 'longcot/s1k_gemini.jsonl'}")  # both teachers
    assert Counter(rejects.values()) == {"missing_field": 4, "no_gold": 1}
    assert traces[1].reasoning.startswith("The problem asks") and traces[1].response.startswith("Solution:")


def test_limo_and_messages():
    traces, rejects = read("limo", f"data.path={HUB / 'limo.jsonl'}")
    assert [(t.gold_answer, t.response) for t in traces] == [("42", None)] and rejects == {"limo/1": "no_gold"}
    assert traces[0].reasoning.endswith("\\boxed{42}")
    traces, rejects = read("messages", f"data.path={HUB / 'messages.jsonl'}")
    assert [(t.problem, t.reasoning, t.gold_answer) for t in traces] == [
        ("What is 9-2?", "9 minus 2 is 7.", "7"), ("What is 3*3?", "three threes", "9")]
    assert rejects == {"messages/2": "unclosed_thought", "messages/3": "no_assistant_turn"}


def test_problems_from_an_adapter_one_per_row():
    problems, _ = read("openr1_math", f"data.path={HUB / 'openr1_math.jsonl'}", "data.correct_only=false",
                       kind=Problem)
    assert [(p.problem, p.gold_answer) for p in problems] == [("What is 2+3?", "5"), ("Compute 10/4.", "\\frac{5}{2}"),
                                                              ("A row without flags.", "1")]


def test_bad_names_fail_clearly():
    with pytest.raises(ConfigError, match="openthougts"):
        compose("enhance", ["data=openthougts"])
    with pytest.raises(ConfigError, match="data.format: 'chatml' is not one of openr1, conversations"):
        compose("enhance", ["data=messages", f"data.path={HUB / 'messages.jsonl'}", "data.format=chatml"])


def test_correct_only_needs_correctness_flags(shared_data):
    """Asked for correct generations only: a format without flags is a config error naming the key, and a
    flag-carrying format whose rows lack the flags rejects each generation with its reason."""
    for data in ("openthoughts", "limo", "messages", "synthetic"):
        with pytest.raises(ConfigError, match="data.correct_only=True: data.format=.* has no correctness flags"):
            compose("enhance", [f"data={data}", "data.correct_only=true"])
    traces, rejects = read("s1k", f"data.path={shared_data / 'longcot/s1k_gemini.jsonl'}", "data.teachers=[gemini]",
                           "data.correct_only=true")  # the shared s1K-style file has no gemini_grade field
    assert not traces and Counter(rejects.values()) == {"no_correctness_flags": 4, "no_gold": 1}


def test_hub_reads_stream_only_the_rows_asked_for_and_cache_them(monkeypatch, tmp_path):
    rows = [json.loads(line) for line in (HUB / "conversations.jsonl").read_text().splitlines()] * 500
    pulled, calls = [], []

    class Stream:  # what `load_dataset(..., streaming=True)` returns: rows are produced as they are iterated
        def __iter__(self):
            for r in rows:
                pulled.append(1)
                yield r

    def fake_load_dataset(name, config=None, split=None, streaming=False):
        calls.append((name, config, split, streaming))
        assert streaming, "a limited read must stream"
        return Stream()

    datasets = types.ModuleType("datasets")
    datasets.load_dataset = fake_load_dataset
    monkeypatch.setitem(sys.modules, "datasets", datasets)
    over = ["data.limit=6", f"data.cache_dir={tmp_path}"]
    traces, rejects = read("openthoughts", *over)
    assert calls == [("open-thoughts/OpenThoughts-114k", None, "train", True)]
    assert len(traces) + len(rejects) == 6 and len(pulled) == 6  # not the 2000 rows
    cfg = compose("enhance", ["data=openthoughts", *over])
    assert hub_cache_path(cfg.data).is_file()
    again, _ = read("openthoughts", *over)  # from the cache: no Hub call at all
    assert len(calls) == 1 and [t.id for t in again] == [t.id for t in traces]


def test_traces_file_counts_kept_and_rejected(tmp_path):
    cfg = compose("enhance", ["data=openr1_math", f"data.path={HUB / 'openr1_math.jsonl'}", f"runs_dir={tmp_path}"])
    path = traces_file(cfg)
    stats = json.loads((path.parent / "stats.json").read_text())
    assert (stats["n_kept"], stats["n_rejected"]) == (3, 3) and len(path.read_text().splitlines()) == 3
    assert stats["reject_reasons"] == {"incorrect_generation": 2, "no_correctness_flags": 1}
    dropped = [json.loads(line) for line in (path.parent / "rejected.jsonl").read_text().splitlines()]
    assert sorted((d["id"], d["reason"]) for d in dropped) == [  # every drop, with its reason
        ("u-1/1", "incorrect_generation"), ("u-1/2", "incorrect_generation"), ("u-3/0", "no_correctness_flags")]
    assert traces_file(cfg) == path  # reused while the data config is unchanged


def test_enhance_and_train_read_an_adapter_config_without_input(tmp_path, tiny_qwen_dir):
    """`dlcot enhance data=NAME` / `dlcot train data=NAME` work unchanged: the data group's traces are written
    once (with their rejects) and fed to the stage."""
    from dlcot.commands import run_command
    from dlcot.train.data import build_sft_data
    from dlcot.train.models import load_student_tokenizer

    # data.limit counts source rows: 2 OpenR1 rows hold 4 usable generations, and enhance reads all 4
    data = ["data=openr1_math", f"data.path={HUB / 'openr1_math.jsonl'}", "data.correct_only=false", "data.limit=2",
            f"runs_dir={tmp_path}"]
    out = run_command("enhance", [*data, f"output={tmp_path / 'enh'}", "enhance.workers=1", "enhance=none",
                                         "enhance.no_correct=keep_raw"])  # one-line fixture traces: no approach
    stats = json.loads((out / "stats.json").read_text())
    assert stats["n_input"] == 4
    made = json.loads(next((tmp_path / "data").glob("openr1_math-*/stats.json")).read_text())
    assert (made["n_kept"], made["reject_reasons"]) == (4, {"incomplete_reasoning": 1})
    cfg = compose("train", [*data, "student=tiny_qwen2", "train=sft_cpu_tiny"])
    sft = build_sft_data(cfg, load_student_tokenizer(cfg.student, str(tiny_qwen_dir)))
    assert sft.stats["n_input"] == 4 and sft.stats["data"].startswith(str(tmp_path / "data" / "openr1_math-"))
