"""Every eval metric equals a hand-computed value on scripted responses (pass@k with n > k, maj@k ties,
answerless and truncated responses, rejects, breakdown), plus resume and the pass@k estimator itself."""
from __future__ import annotations

import json
from math import comb

import pytest

from dlcot.config import compose
from dlcot.engines.scripted import ScriptedEngine
from dlcot.eval.commands import evaluate
from dlcot.eval.metrics import marker_counts, pass_at_k
from tests.eval_fixtures import WhitespaceTokenizer

# problem -> 4 samples. P1 gold 4: correct, wrong, correct (unboxed), answerless. P2 gold 7: correct, wrong,
# wrong, truncated at 20 tokens (answerless). P3 gold 10: four correct, each with one "Wait".
SCRIPT = {
    "P1": ["\\boxed{4}", "\\boxed{5}", "The answer is 4.", "no answer here"],
    "P2": ["\\boxed{7}", "\\boxed{3}", "\\boxed{3}", "wait " * 30],
    "P3": ["Wait, \\boxed{10}"] * 4,
}


@pytest.fixture()
def bench_file(tmp_path):
    rows = [{"unique_id": "p1", "problem": "P1: what is 2+2?", "answer": "4", "subject": "a"},
            {"unique_id": "p2", "problem": "P2: what is 3+4?", "answer": "\\boxed{7}", "subject": "a"},
            {"unique_id": "p3", "problem": "P3: what is 5+5?", "answer": "10", "subject": "b"},
            {"unique_id": "p4", "problem": "P4: a row without gold"}]
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_scripted(bench_file, out, calls=None, n=4, ks="[1,2,4]"):
    def respond(prompt: str, sample: int) -> str:
        key = prompt.split(":")[0]
        if calls is not None:
            calls.append((key, sample))
        return SCRIPT[key][sample]

    cfg = compose("eval", [f"eval.benchmark.path={bench_file}", "eval.benchmark.breakdown=[subject]",
                           f"eval.n={n}", f"eval.k={ks}", "engine.max_new_tokens=20", "eval.chunk_size=2"])
    engine = ScriptedEngine(respond, tokenizer=WhitespaceTokenizer(), tokenizer_name="whitespace")
    evaluate(cfg, "scripted-model", out, engine=engine)
    return json.loads((out / "metrics.json").read_text())


def test_every_metric_matches_hand_computed_values(bench_file, tmp_path):
    m = run_scripted(bench_file, tmp_path / "out")
    # tokens per response: P1 1,1,4,3  P2 1,1,1,20 (truncated)  P3 2,2,2,2  -> 40 tokens, 7 correct
    assert (m["n"], m["n_samples"], m["n_responses"], m["n_input"], m["n_rejected"]) == (3, 4, 12, 4, 1)
    assert m["reject_reasons"] == {"missing_field": 1}
    assert m["accuracy"] == pytest.approx(7 / 12)
    assert m["pass_at_k"]["1"] == pytest.approx(7 / 12)
    # pass@2: P1 (c=2) 1 - C(2,2)/C(4,2) = 5/6; P2 (c=1) 1 - C(3,2)/C(4,2) = 1/2; P3 1
    assert m["pass_at_k"]["2"] == pytest.approx((5 / 6 + 1 / 2 + 1) / 3)
    assert m["pass_at_k"]["4"] == pytest.approx(1.0)
    assert m["k_skipped"] == []  # a k above eval.n fails at composition (tests/unit/test_schema.py)
    # maj@1: all first samples right; maj@2: P2 ties 7 vs 3 -> first seen (7) wins; maj@4: P2 votes 3 (x2)
    assert m["maj_at_k"] == pytest.approx({"1": 1.0, "2": 1.0, "4": 2 / 3})
    assert m["mean_tokens"] == pytest.approx(40 / 12)
    assert m["median_tokens"] == pytest.approx(2.0)
    assert m["tokens_per_correct"] == pytest.approx(40 / 7)
    assert m["mean_tokens_correct"] == pytest.approx(14 / 7)
    assert m["mean_tokens_incorrect"] == pytest.approx(26 / 5)
    assert m["answerless_rate"] == pytest.approx(2 / 12)
    assert m["truncated_rate"] == pytest.approx(1 / 12)
    assert m["markers_per_response"]["wait"] == pytest.approx((20 + 4) / 12)
    assert m["markers_per_response"]["alternatively"] == 0.0
    assert m["breakdown"]["subject"]["a"]["n"] == 2
    assert m["breakdown"]["subject"]["a"]["accuracy"] == pytest.approx(3 / 8)
    assert m["breakdown"]["subject"]["b"]["accuracy"] == 1.0
    assert (m["benchmark"], m["model"], m["tokenizer"]) == ("math500", "scripted-model", "whitespace")
    preds = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 12
    trunc = next(p for p in preds if p["id"] == "p2" and p["sample"] == 3)
    assert (trunc["finish_reason"], trunc["n_tokens"], trunc["extracted"], trunc["reason"]) == ("length", 20, None,
                                                                                                 "no_answer")
    unboxed = next(p for p in preds if p["id"] == "p1" and p["sample"] == 2)
    assert (unboxed["extracted"], unboxed["correct"]) == ("4", True)
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["id"], r["reason"]) for r in rejected] == [("p4", "missing_field")]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "pass@2" in report and "By subject" in report
    assert (tmp_path / "out" / "accuracy_vs_tokens.png").stat().st_size > 0
    assert (tmp_path / "out" / "length_hist.png").stat().st_size > 0


def test_rerun_resumes_and_redoes_only_missing_samples(bench_file, tmp_path):
    out = tmp_path / "out"
    first = run_scripted(bench_file, out)
    calls: list = []
    again = run_scripted(bench_file, out, calls)
    assert calls == [] and again["problems_generated"] == 0 and again["accuracy"] == first["accuracy"]
    # simulate a crash after P3's first two samples: the rerun regenerates P3 and writes only its missing lines
    preds = out / "predictions.jsonl"
    lines = preds.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if not (json.loads(ln)["id"] == "p3" and json.loads(ln)["sample"] >= 2)]
    (out / "predictions.jsonl.partial").write_text("".join(kept) + '{"uid": "p3#2", "id": "p3", "torn')
    preds.unlink()
    resumed = run_scripted(bench_file, out, calls)
    assert {key for key, _ in calls} == {"P3"}
    assert resumed == {**first, "generation_s": resumed["generation_s"], "problems_generated": 1}
    uids = [json.loads(ln)["uid"] for ln in preds.read_text().splitlines()]
    assert sorted(uids) == sorted(f"p{i}#{j}" for i in (1, 2, 3) for j in range(4))


@pytest.mark.parametrize("n,c,k", [(4, 2, 2), (10, 3, 5), (5, 0, 3), (5, 5, 1), (20, 1, 20)])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k):
    # probability that a random k-subset of n samples holds at least one of the c correct ones
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_marker_counts_are_whole_words():
    text = "Wait, let me re-wait. Alternatively... awaiting. WAIT! Hmm, double-check it; hmmm"
    assert marker_counts(text, ["wait", "alternatively", "hmm", "double-check"]) == {
        "wait": 2, "alternatively": 1, "hmm": 1, "double-check": 1}


def test_rerun_with_another_setup_is_refused(bench_file, tmp_path):
    from dlcot.errors import ConfigError

    out = tmp_path / "out"
    run_scripted(bench_file, out, n=2, ks="[1,2]")
    more = run_scripted(bench_file, out, n=4)  # more samples of the same setup: allowed, only new ones made
    assert more["n_samples"] == 4
    cfg = compose("eval", [f"eval.benchmark.path={bench_file}", "eval.n=4", "eval.temperature=0.7"])
    engine = ScriptedEngine(lambda p, j: SCRIPT[p.split(":")[0]][j], tokenizer=WhitespaceTokenizer())
    with pytest.raises(ConfigError, match="different .*benchmark.*sampling"):
        evaluate(cfg, "scripted-model", out, engine=engine)
