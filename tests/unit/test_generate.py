"""`dlcot generate`: the synthetic teacher's files, and engine-teacher traces split at the thought."""
from __future__ import annotations

import json

import pytest

from dlcot.commands import run_command
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


def test_engine_teacher_is_asked_for_the_cot_granularity_and_format(tmp_path):
    """Key factors of CoT distillation: the cot group's instructions reach the teacher's prompt, and the traces,
    stats and report label say which granularity and format made them."""
    from dlcot.errors import ConfigError
    from dlcot.orchestrate.report import _data_label

    probs = tmp_path / "p.jsonl"
    probs.write_text(json.dumps({"id": "a", "problem": "one plus one?", "answer": "2"}) + "\n")
    rule = "engine.rules.default='<think>plain</think>It is 2.'"
    fine = "+engine.rules.sub-questions='<think>ladder of sub-questions</think>It is 2.'"
    args = [f"input={probs}", "teacher.name=t", "teacher.model=t", "engine=scripted", rule, fine,
            "cot.guide=instruction"]  # the instruction sentences (the default shows a released exemplar)
    out = run_command("generate", [*args, "cot.format=least_to_most", "cot.granularity=6", f"output={tmp_path / 'g6'}"])
    (trace,) = _lines(out / "traces.jsonl")
    assert trace["reasoning"] == "ladder of sub-questions"  # the least-to-most instruction reached the teacher
    assert (trace["cot_granularity"], trace["cot_format"]) == (6, "least_to_most")
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["cot_granularity"], stats["cot_format"]) == (6, "least_to_most")
    assert _data_label({"data": str(out / "traces.jsonl")}) == "raw (t, least_to_most, granularity 6)"

    from dlcot.config import compose
    from dlcot.data.generate import cot_instruction

    cot = compose("generate", ["cot.format=least_to_most", "cot.granularity=6", "cot.guide=instruction"]).cot
    assert cot_instruction(cot) == f"{cot.format_instructions.least_to_most} {cot.granularity_instructions[6]}"
    plain = run_command("generate", [*args, f"output={tmp_path / 'plain'}"])
    assert _lines(plain / "traces.jsonl")[0]["reasoning"] == "plain"
    assert _data_label({"data": str(plain / "traces.jsonl")}) == "raw (t, cot)"

    for bad, message in [("cot.granularity=7", "use null .* or one of 1, 2, 3, 4, 5, 6"),
                         ("cot.format=poem", "not one of cot, least_to_most")]:
        with pytest.raises(ConfigError, match=message):
            run_command("generate", [*args, bad, f"output={tmp_path / 'bad'}"])
    with pytest.raises(ConfigError, match="teacher=synthetic writes its own CoT"):
        run_command("generate", ["cot.granularity=2", f"output={tmp_path / 'bad'}"])
    assert not (tmp_path / "bad").exists()


def test_synthetic_teacher_refuses_a_model_it_would_ignore(tmp_path):
    from dlcot.errors import ConfigError

    with pytest.raises(ConfigError, match="would ignore teacher.model=some/model"):
        run_command("generate", ["teacher.model=some/model", "engine=hf", f"output={tmp_path / 'gen'}"])
    assert not (tmp_path / "gen").exists()
