"""`dlcot generate`: the synthetic teacher's files, and engine-teacher traces split at the thought."""
from __future__ import annotations

import json

from dlcot.cli import run_command
from dlcot.records import Segmentation, Trace, read_records


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_synthetic_teacher_writes_traces_truth_and_heldout(tmp_path):
    out = run_command("generate", ["data.n_problems=12", "data.heldout=4", "+teacher.style.p_wrong_final=0.5",
                                   f"output={tmp_path}"])
    traces = list(read_records(out / "traces.jsonl", Trace))
    assert len(traces) == 12 and all(isinstance(t, Trace) for t in traces)
    segs = [Segmentation.from_dict(d) for d in _lines(out / "segments.jsonl")]
    assert [s.id for s in segs] == [t.id for t in traces]
    assert all(s.n_chars == len(t.reasoning) for s, t in zip(segs, traces, strict=True))
    held = _lines(out / "heldout.jsonl")
    assert len(held) == 4 and not {h["id"] for h in held} & {t.id for t in traces}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["n_input"] == stats["n_kept"] + stats["n_rejected"] == 12
    assert 0 < stats["n_correct"] < 12  # p_wrong_final=0.5 makes some traces end wrong


def test_engine_teacher_splits_thought_and_rejects_unclosed(tmp_path):
    probs = tmp_path / "p.jsonl"
    probs.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "problem": "What is one plus one?", "answer": "2"},
        {"id": "b", "problem": "say nothing", "answer": "0"},
        {"id": "c", "problem": "2+2?"},  # no gold: rejected with its reason
    ]) + "\n")
    stored = tmp_path / "teacher_outputs.jsonl"  # what a teacher said, replayed by id
    stored.write_text(json.dumps({"id": "a", "response": "<think>one plus one is two</think>The answer is 2."}) + "\n"
                      + json.dumps({"id": "b", "response": "I am not sure."}) + "\n")
    out = run_command("generate", [f"input={probs}", "teacher.name=replayed", "teacher.model=replayed",
                                   "engine=replay", f"engine.path={stored}", f"output={tmp_path / 'out'}"])
    (trace,) = _lines(out / "traces.jsonl")
    assert trace["reasoning"] == "one plus one is two" and trace["response"] == "The answer is 2."
    rejects = {r["id"]: r["reason"] for r in _lines(out / "rejected.jsonl")}
    assert rejects == {"b": "unclosed_thought", "c": "missing_field"}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["n_input"] == 3 and stats["n_kept"] == 1 and stats["n_rejected"] == 2


def test_engine_teacher_resumes_n_samples_without_duplicates(tmp_path):
    """With teacher.n=2 a crash can land between a problem's samples: the rerun writes only the missing ones."""
    probs = tmp_path / "p.jsonl"
    probs.write_text("".join(json.dumps({"id": i, "problem": f"{i} plus one?", "answer": "2"}) + "\n"
                             for i in ("a", "b", "c")))
    out = tmp_path / "out"
    out.mkdir()
    done = [{"id": tid, "problem": "x", "gold_answer": "2", "reasoning": "before the crash", "response": "2"}
            for tid in ("a#0", "a#1", "b#0")]
    (out / "traces.jsonl.partial").write_text("".join(json.dumps(r) + "\n" for r in done))
    run_command("generate", [f"input={probs}", "teacher.name=t", "teacher.model=t", "teacher.n=2",
                             "engine=scripted", "engine.rules.default='<think>one more</think>It is 2.'",
                             f"output={out}"])
    ids = [r["id"] for r in _lines(out / "traces.jsonl")]
    assert sorted(ids) == ["a#0", "a#1", "b#0", "b#1", "c#0", "c#1"]
    kept = {r["id"]: r["reasoning"] for r in _lines(out / "traces.jsonl")}
    assert kept["a#1"] == kept["b#0"] == "before the crash" and kept["b#1"] == "one more"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["n_input"] == 6 == stats["n_kept"] and stats["n_problems"] == 3
