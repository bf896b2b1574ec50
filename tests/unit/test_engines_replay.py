"""Replay and scripted engines, make_engine errors, and the Sky-T1 label trap: the shared traces' `is_correct`
came from a grader that mis-reads nested braces; re-graded through `dlcot eval engine=replay`, we decide which
side is right case by case."""
from __future__ import annotations

import json

import pytest

from dlcot.commands import run_command
from dlcot.config import compose
from dlcot.engines import make_engine
from dlcot.engines.replay import ReplayEngine
from dlcot.engines.scripted import ScriptedEngine
from dlcot.errors import ConfigError, RecordError


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_replay_matches_by_id_with_mapped_fields_and_reports_missing(tmp_path):
    path = write(tmp_path / "r.jsonl", [{"qid": "a", "out": "\\boxed{1}"}, {"qid": "a", "out": "\\boxed{2}"},
                                        {"qid": "b", "out": "x y z"}])
    eng = ReplayEngine(str(path), response_field="out", id_field="qid")
    out = eng.generate(["p", "q", "r"], n=2, keys=["a", "b", "c"])
    assert [c.text for c in out[0]] == ["\\boxed{1}", "\\boxed{2}"]
    assert out[1][0].text == "x y z" and out[1][1].finish_reason == "missing"
    assert [c.finish_reason for c in out[2]] == ["missing", "missing"]
    assert out[1][0].n_tokens > 0 and eng.tokenizer_name == "qwen2"


def test_replay_matches_by_problem_text(tmp_path):
    path = write(tmp_path / "r.jsonl", [{"problem": "What is  1+1?", "response": "2"},
                                        {"problem": "What is 1+1? Then double it.", "response": "4"}])
    eng = ReplayEngine(str(path), match="problem")
    out = eng.generate(["Q: What is 1+1? Then double it.\nBox it.", "Q: What is 1+1?\nBox it."])
    assert [c[0].text for c in out] == ["4", "2"]  # the longer stored problem wins where both occur


def test_replay_bad_file_is_a_clear_error(tmp_path):
    with pytest.raises(RecordError, match="field 'out'.*response_field"):
        ReplayEngine(str(write(tmp_path / "r.jsonl", [{"id": "a", "response": "x"}])), response_field="out")
    with pytest.raises(ConfigError, match="engine.path"):
        ReplayEngine("")


def test_scripted_rules_from_config():
    cfg = compose("eval", ["engine=scripted", "+engine.rules.plus='so \\boxed{4}'"])
    eng = make_engine(cfg.engine)
    out = eng.generate(["what is 2 plus 2?", "anything else"], n=1, max_new_tokens=50)
    assert out[0][0].text == "so \\boxed{4}" and out[1][0].text == "I think the answer is \\boxed{0}."
    with pytest.raises(ConfigError):
        ScriptedEngine({})


@pytest.mark.parametrize("override,match", [("engine=vllm", "needs model=PATH"), ("engine=hf", "needs model=PATH"),
                                            ("engine.name=nope", "engine.name: 'nope' is not one of hf, vllm")])
def test_make_engine_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        make_engine(compose("eval", [override]).engine)


def test_vllm_missing_is_a_config_error():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    with pytest.raises(ConfigError, match="dlcot\\[vllm\\]"):
        make_engine(compose("eval", ["engine=vllm"]).engine, model_path="x")


@pytest.fixture(scope="module")
def skyt1_eval(tmp_path_factory):
    from pathlib import Path

    data = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not data.is_dir():
        pytest.skip(f"../shared/data not found: {data}")
    out = tmp_path_factory.mktemp("skyt1")
    src = data / "longcot" / "skyt1_math500.jsonl"
    run_command("eval", ["engine=replay", f"engine.path={src}", "engine.response_field=raw_output",
                         "engine.match=problem", "benchmark=math500", f"output={out}"])
    preds = {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    bench = [json.loads(line) for line in (data / "problems/math500/test.jsonl").read_text().splitlines()]
    sky = [json.loads(line) for line in src.read_text().splitlines()]
    # the Sky-T1 file is MATH-500 in order; matching by problem text must have found every row
    pairs = {s["id"]: (s, preds[b["unique_id"]]) for b, s in zip(bench, sky, strict=True)}
    return json.loads((out / "metrics.json").read_text()), pairs


@pytest.mark.shared_data
def test_skyt1_replay_scores_every_problem(skyt1_eval):
    metrics, pairs = skyt1_eval
    assert metrics["n"] == 500 and metrics["n_rejected"] == 0 and metrics["tokenizer"] == "qwen2"
    # many traces end mid-thought (thought_closed False) without any final answer: answerless, not wrong; ~100
    # more state their answer only in prose at the end (credited by the default grading, not by strict)
    assert 0.2 < metrics["answerless_rate"] < 0.4 and 0.15 < metrics["unmarked_rate"] < 0.3
    assert metrics["accuracy_strict"] < metrics["accuracy"]


@pytest.mark.shared_data
@pytest.mark.parametrize("sid,gold,grader_read", [
    ("math500/73", "\\frac{3\\sqrt{3}}{4}", "4"),  # nested braces: the grader kept the last {…} group
    ("math500/28", "-2 + 7i", "7"),
    ("math500/338", "4343_6", "6"),
    ("math500/113", "8000", "definitely8000"),  # words glued to the number
])
def test_skyt1_grader_misreads_are_correct_answers(skyt1_eval, sid, gold, grader_read):
    """Original label False, ours True: the response's boxed answer equals gold; the grader read a fragment."""
    _, pairs = skyt1_eval
    sky, pred = pairs[sid]
    assert (sky["gold_answer"], sky["model_answer"], sky["is_correct"]) == (gold, grader_read, False)
    assert pred["correct"] and pred["reason"] == "match" and pred["extracted"] not in (None, grader_read)


@pytest.mark.shared_data
def test_skyt1_disagreements_split_by_who_is_right(skyt1_eval):
    _, pairs = skyt1_eval
    ours_only = [s["id"] for s, p in pairs.values() if p["correct"] and not s["is_correct"]]
    theirs_only = {s["id"]: (s, p) for s, p in pairs.values() if s["is_correct"] and not p["correct"]}
    assert len(ours_only) >= 5  # the grader's misreads (parametrized test above)
    # Most responses the grader credits and we do not were cut off before any final answer (mostly mid-thought;
    # math500/139 mid-solution): the grader credited the last number in the text. We are right: no answer.
    cut_off = {sid for sid, (s, p) in theirs_only.items()
               if p["extracted"] is None and (not s["thought_closed"] or sid == "math500/139")}
    assert len(cut_off) >= 0.9 * len(theirs_only)
    assert all("\\boxed" not in theirs_only[sid][1]["response"] for sid in cut_off)
    # the former gaps (an unboxed final display `$$\tan A = 2$$`, `12^{\text{th}}\text{ grade}`, "three boxes
    # contain neither ...") are read by the field's grading convention (#15)
    assert set(theirs_only) == cut_off
    assert all(pairs[sid][1]["correct"] for sid in ("math500/45", "math500/379", "math500/404"))
    # math500/381 only *recalls* gold ("Wait, but I recall that the correct answer is 1/2.") and goes on
    # searching until cut off: no answer was adopted, so the recalled value is not taken (a false positive before)
    sky, pred = pairs["math500/381"]
    assert "I recall that the correct answer is 1/2" in sky["raw_output"] and pred["reason"] == "no_answer"
    # e.g. math500/355: the trace stops at "Let me try \(k =" while still searching; the grader credited
    # "1" against gold 100 — no answer was ever given
    sky, pred = pairs["math500/355"]
    assert sky["is_correct"] and sky["model_answer"] == "1" and pred["reason"] == "no_answer"
    assert sky["raw_output"].rstrip().endswith("\\(k =")


def test_replay_eval_counts_problems_without_a_stored_response(tmp_path):
    bench = write(tmp_path / "bench.jsonl", [{"question": f"q{i}?", "answer": f"#### {i}", "id": f"g{i}"}
                                             for i in range(4)])
    stored = write(tmp_path / "stored.jsonl", [{"id": "g0", "text": "\\boxed{0}"}, {"id": "g1", "text": "\\boxed{5}"},
                                               {"id": "g3", "text": "no idea"}])
    out = run_command("eval", ["benchmark=gsm8k", f"eval.benchmark.path={bench}", "engine=replay",
                               f"engine.path={stored}", "engine.response_field=text", f"output={tmp_path / 'o'}"])
    m = json.loads((out / "metrics.json").read_text())
    assert (m["n_input"], m["n"], m["n_rejected"], m["reject_reasons"]) == (4, 3, 1, {"no_response": 1})
    assert m["accuracy"] == pytest.approx(1 / 3) and m["answerless_rate"] == pytest.approx(1 / 3)
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["id"], r["reason"]) for r in rejected] == [("g2", "no_response")]
