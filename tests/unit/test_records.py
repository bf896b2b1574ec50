"""JSONL IO: rejects instead of crashes, field mapping, atomic + resumable writes, datasets round trip."""
from __future__ import annotations

import json

import pytest

from dlcot.errors import RecordError
from dlcot.records import Problem, Reject, ResumableJsonl, Trace, from_dataset, read_records, to_dataset, write_jsonl


def _write(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_lines_become_rejects_naming_file_line_and_field(tmp_path):
    good = {"id": "a", "problem": "1+1?", "reasoning": "2", "gold_answer": "2"}
    f = _write(tmp_path / "t.jsonl", [
        json.dumps(good).encode(),
        b'{"id": "b", "problem": ',                                   # malformed JSON
        json.dumps({"id": "c", "problem": "p", "gold_answer": "1"}).encode(),  # missing reasoning
        json.dumps({**good, "id": "d", "reasoning": 5}).encode(),       # wrong type
        b'{"id": "e", "problem": "\xff\xfe", "reasoning": "r", "gold_answer": "1"}',  # not UTF-8
        json.dumps(good).encode(),                                     # duplicate id
        b"[1, 2]",                                                     # not an object
    ])
    out = list(read_records(f, Trace))
    assert isinstance(out[0], Trace) and out[0].id == "a"
    rejects = [r for r in out if isinstance(r, Reject)]
    assert [r.reason for r in rejects] == ["bad_json", "missing_field", "bad_type", "bad_encoding", "duplicate_id",
                                           "bad_json"]
    assert rejects[0].id == "line:2" and f"{f}:2" in rejects[0].detail
    assert rejects[1].id == "c" and "'reasoning'" in rejects[1].detail and "data.fields.reasoning" in rejects[1].detail
    assert f"{f}:4" in rejects[2].detail and "'reasoning'" in rejects[2].detail
    assert len(out) == 7  # every input line accounted for


def test_missing_file_raises_record_error(tmp_path):
    with pytest.raises(RecordError, match="no such file"):
        list(read_records(tmp_path / "nope.jsonl", Trace))


def test_empty_file_yields_nothing(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    assert list(read_records(tmp_path / "e.jsonl", Trace)) == []


def test_explicit_field_mapping_and_extra_fields_kept(tmp_path):
    f = _write(tmp_path / "x.jsonl", [json.dumps({"q": "What?", "think": "hmm", "ans": 7, "level": 3}).encode()])
    (t,) = read_records(f, Trace, mapping={"problem": "q", "reasoning": "think", "gold_answer": "ans"})
    assert (t.id, t.problem, t.reasoning, t.gold_answer, t.extra) == ("x/0", "What?", "hmm", "7", {"level": 3})


def test_shared_formats_load_with_defaults(shared_data):
    sky = list(read_records(shared_data / "longcot/skyt1_math500.jsonl", Trace))
    assert len(sky) == 500 and all(isinstance(t, Trace) for t in sky)
    assert sky[0].response and sky[0].teacher.startswith("google/gemma-2-27b-it")
    s1k = list(read_records(shared_data / "longcot/s1k_gemini.jsonl", Trace))
    assert len(s1k) == 5 and all(isinstance(t, Trace) and t.reasoning for t in s1k)
    gsm = list(read_records(shared_data / "problems/gsm8k/test.jsonl", Problem, limit=3))
    assert gsm[0].id == "test/0" and gsm[0].gold_answer == "18"  # `#### 18` → 18
    math = list(read_records(shared_data / "problems/math500/test.jsonl", Problem, limit=1))
    assert math[0].id == "test/precalculus/807.json" and math[0].gold_answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    aime = list(read_records(shared_data / "problems/aime/aime24.jsonl", Problem, limit=1))
    assert aime[0].problem and aime[0].gold_answer.isdigit()


def test_resumable_writer_recovers_after_crash_and_commits_atomically(tmp_path):
    path = tmp_path / "out.jsonl"
    w = ResumableJsonl(path)
    w.write({"id": "1", "v": 1})
    w.write({"id": "2", "v": 2})
    w.close()
    with open(w.partial, "a") as fh:  # a crash in the middle of a line
        fh.write('{"id": "3", "v"')
    assert not path.exists()
    w2 = ResumableJsonl(path)
    assert w2.done_ids == {"1", "2"}
    w2.write({"id": "3", "v": 3})
    w2.commit()
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["1", "2", "3"]
    assert not w2.partial.exists()
    # resume=False starts over
    w3 = ResumableJsonl(path, resume=False)
    assert w3.done_ids == set()
    w3.close()


def test_dataset_round_trip():
    probs = [Problem("a", "1+1", "2", {"level": 1}), Problem("b", "2+2", "4")]
    ds = to_dataset(probs)
    assert ds.num_rows == 2 and ds[0]["level"] == 1
    back = list(from_dataset(ds, Problem))
    assert [p.id for p in back] == ["a", "b"] and back[1].gold_answer == "4"


def test_write_jsonl_converts_dataclasses(tmp_path):
    n = write_jsonl(tmp_path / "r.jsonl", [Reject("x", "why", "detail")])
    assert n == 1 and json.loads((tmp_path / "r.jsonl").read_text()) == {"id": "x", "reason": "why", "detail": "detail"}


def test_reject_names_the_callers_mapping_key(tmp_path):
    f = _write(tmp_path / "b.jsonl", [json.dumps({"question": "q"}).encode()])
    (rej,) = read_records(f, Problem, fields_key="eval.benchmark.fields")
    assert "eval.benchmark.fields.gold_answer=<field>" in rej.detail
