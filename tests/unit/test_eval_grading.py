"""metrics.json's side-by-side gradings (convention / strict), answerless / unmarked / truncated rates, and what a
length-truncated output gets (`eval.truncated`), each equal to a hand count on scripted responses."""
from __future__ import annotations

import json
import time

import pytest

from dlcot.config import compose
from dlcot.engines.scripted import ScriptedEngine
from dlcot.errors import ConfigError
from dlcot.eval.commands import evaluate
from tests.eval_fixtures import WhitespaceTokenizer

# gold 4, four samples: boxed; stated in prose only; marked, then cut at 20 tokens; no answer at all.
RESPONSES = ["So \\boxed{4}.", "I checked it twice. The height is 4 cm.", "The answer is 4. " + "wait " * 30,
             "I am not sure how to go on"]


def run(tmp_path, *overrides):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "q", "problem": "Q: how tall?", "answer": "4"}) + "\n")
    cfg = compose("eval", [f"eval.benchmark.path={bench}", "eval.n=4", "eval.k=[1]", "engine.max_new_tokens=20",
                           *overrides])
    engine = ScriptedEngine(lambda prompt, j: RESPONSES[j], tokenizer=WhitespaceTokenizer())
    out = tmp_path / "_".join(o.replace("=", "-") for o in overrides or ("default",))
    evaluate(cfg, "scripted", out, engine=engine)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return json.loads((out / "metrics.json").read_text()), rows


def test_convention_and_strict_side_by_side(tmp_path):
    m, rows = run(tmp_path)
    assert [r["answer_kind"] for r in sorted(rows, key=lambda r: r["sample"])] == ["boxed", "prose", "marker", None]
    assert m["grading"] == "convention" and m["truncated"] == "grade"
    assert m["accuracy"] == m["accuracy_convention"] == pytest.approx(3 / 4)
    assert m["accuracy_strict"] == pytest.approx(2 / 4)  # the prose-only answer is not a marked one
    assert (m["answerless_rate"], m["unmarked_rate"], m["truncated_rate"]) == pytest.approx((1 / 4, 1 / 4, 1 / 4))
    assert m["undecided_rate"] == 0.0


def test_strict_grading_and_truncated_wrong(tmp_path):
    m, rows = run(tmp_path, "eval.grading=strict")
    assert m["accuracy"] == m["accuracy_strict"] == pytest.approx(2 / 4)
    assert m["accuracy_convention"] == pytest.approx(3 / 4)
    prose = next(r for r in rows if r["sample"] == 1)
    assert (prose["extracted"], prose["correct"], prose["correct_convention"]) == (None, False, True)
    m, rows = run(tmp_path, "eval.truncated=wrong")
    cut = next(r for r in rows if r["finish_reason"] == "length")
    assert cut["extracted"] == "4" and not cut["correct"] and not cut["correct_strict"]
    assert (m["accuracy"], m["accuracy_strict"]) == pytest.approx((2 / 4, 1 / 4))


def test_bad_grading_values_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="eval.grading: 'lenient' is not one of convention, strict"):
        run(tmp_path, "eval.grading=lenient")
    with pytest.raises(ConfigError, match="eval.truncated: 'drop' is not one of grade, wrong"):
        run(tmp_path, "eval.truncated=drop")


def test_a_changed_grading_does_not_reuse_predictions(tmp_path):
    run(tmp_path, "eval.grading=strict")
    bench = tmp_path / "bench.jsonl"
    cfg = compose("eval", [f"eval.benchmark.path={bench}", "eval.n=4", "engine.max_new_tokens=20"])
    engine = ScriptedEngine(lambda prompt, j: RESPONSES[j], tokenizer=WhitespaceTokenizer())
    with pytest.raises(ConfigError, match="grading"):
        evaluate(cfg, "scripted", tmp_path / "eval.grading-strict", engine=engine)


@pytest.mark.slow  # two evals (report plots included) plus 1.2 s per parse: ~20 s on the shared machine
def test_predictions_do_not_depend_on_machine_load(tmp_path, monkeypatch):
    """The same eval with every math-verify parse delayed by 1.2 s of wall clock (a loaded machine; the old
    whole-second alarm timed these out as wrong) writes byte-identical predictions."""
    import math_verify

    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "h", "problem": "H: half?", "answer": "\\frac{1}{2}"}) + "\n")
    answers = ["So \\boxed{0.5}."]

    def run_once(out):
        cfg = compose("eval", [f"eval.benchmark.path={bench}", "eval.n=1", "eval.checker_timeout_s=0.3"])
        engine = ScriptedEngine(lambda prompt, j: answers[j], tokenizer=WhitespaceTokenizer())
        evaluate(cfg, "scripted", out, engine=engine)
        return (out / "predictions.jsonl").read_bytes()

    calm = run_once(tmp_path / "calm")
    real = math_verify.parse

    def loaded(text, **kw):
        time.sleep(1.2)
        return real(text, **kw)

    monkeypatch.setattr(math_verify, "parse", loaded)
    assert run_once(tmp_path / "loaded") == calm
    assert [json.loads(line)["reason"] for line in calm.splitlines()] == ["match"]
