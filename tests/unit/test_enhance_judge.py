"""The LLM-judged backend with scripted judges: every answer validated, one retry with the error stated, then
the offline result for that step, counted; quotes realigned with the trace; cache; one batch per step."""
from __future__ import annotations

import json

import pytest

from dlcot.answers import AnswerChecker
from dlcot.enhance.judge import Judge, load_prompts
from dlcot.enhance.label import OfflineBackend
from dlcot.enhance.llm import JudgedBackend, parse_clusters, parse_segments
from dlcot.enhance.realign import JudgeError, locate, parse_json
from dlcot.records import Trace
from tests.enhance_fixtures import CLU_OK, LAB_OK, PARTS, SEG_OK, TEXT, Scripted

GOLD_KINDS = [p[0] for p in PARTS]
A1 = TEXT.index("2 + 3 = 5, then 5 * 4 = 20")
@pytest.fixture(scope="module")
def checker():
    with AnswerChecker() as ch:
        yield ch


def backend(engine, checker, mode="llm", cache_dir=None, max_chars=60000) -> JudgedBackend:
    judge = Judge(engine, model_id="scripted-test", prompts=load_prompts(None), cache_dir=cache_dir)
    return JudgedBackend(mode, judge, OfflineBackend(checker), max_chars)


def trace(i: int = 0) -> Trace:
    return Trace(f"t{i}", f"Problem {i}: what is 2 + 3 * 4?", TEXT, "14")


def test_good_answers_give_the_judged_structure(checker):
    eng = Scripted({"segment": [SEG_OK], "label": [LAB_OK], "cluster": [CLU_OK]})
    b = backend(eng, checker)
    b.prepare([trace(0), trace(1), trace(2)])
    j = b._done["t1"]
    assert [s.kind for s in j.segmentation.segments] == GOLD_KINDS
    assert [s.outcome for s in j.segmentation.segments if s.kind == "approach"] == ["incorrect", "correct",
                                                                                     "incorrect", "correct"]
    assert j.labeled.error_spans == [(A1, A1 + len("2 + 3 = 5, then 5 * 4 = 20"))]
    assert j.clusters == [None, None, 0, 1, 2, 2, 0, 3, 2, 4, None]
    assert j.usage.fallbacks == [] and j.usage.calls == 3 and j.usage.completion_tokens > 0
    assert eng.batches == [("segment", 3), ("label", 3), ("cluster", 3)]  # one batch per step for the chunk
    b.prepare([trace(0)])
    assert b._done["t0"].labeled.gold_parsable and b._done["t0"].labeled.final_verdict.correct


@pytest.mark.parametrize("step, bad, reason", [
    ("segment", "not json at all", "bad_json"),
    ("segment", {"segments": [{"kind": "restatement", "starts_with": "So I need to find 2 + 3 * 4."},
                              {"kind": "approach", "starts_with": "Let me compute from the right to the left"}]},
     "span_not_found"),
    ("segment", {"segments": [{"kind": "restatement", "starts_with": "So I need to find 2 + 3 * 4."},
                              {"kind": "approach", "starts_with": "Let me try a different approach."},
                              {"kind": "verification", "starts_with": "Let me compute left to right"}]},
     "span_out_of_order"),
    ("segment", {"segments": [{"kind": "conclusion", "starts_with": "So I need to find 2 + 3 * 4."},
                              {"kind": "approach", "starts_with": "Let me compute left to right"}]},
     "section_order"),
    ("label", {"approaches": [{"approach": i, "label": "maybe"} for i in range(1, 5)]}, "bad_label"),
    ("label", {"approaches": [{"approach": 1, "label": "incorrect", "errors": ["First 3 * 4 = 12, then 2 + 12"]},
                              *({"approach": i, "label": "correct"} for i in range(2, 5))]},
     "error_span_outside_approach"),
    ("cluster", {"clusters": [{"members": [1, 2, 3]}, {"members": [3, 4]}]}, "bad_clusters"),
])
def test_a_bad_answer_is_retried_with_the_error_then_falls_back_to_offline(checker, step, bad, reason):
    answers = {"segment": [SEG_OK], "label": [LAB_OK], "cluster": [CLU_OK]}
    answers[step] = [bad]  # the retry gets the same bad answer
    eng = Scripted(answers)
    b = backend(eng, checker)
    b.prepare([trace()])
    j = b._done["t0"]
    assert j.usage.fallbacks == [{"step": step, "reason": reason}]
    retry = [p for p in eng.prompts if Scripted.step_of(p) == step][1]
    assert "It was rejected: " + reason in retry  # the second try states the error
    off = OfflineBackend(checker)
    offline = off.label(trace(), off.segment(trace()))
    if step == "segment":  # the offline segmentation, labelled by the judge
        assert [(s.start, s.end) for s in j.segmentation.segments] == [
            (s.start, s.end) for s in offline.segmentation.segments]
    elif step == "label":  # math-verify outcomes, no error spans
        assert j.labeled.error_spans == []
        assert [s.outcome for s in j.segmentation.segments] == [s.outcome for s in offline.segmentation.segments]
    else:
        assert j.clusters is None  # the pipeline clusters offline
    assert j.usage.calls == 4  # three steps plus the one retry


def test_a_retry_that_fixes_the_answer_is_used(checker):
    eng = Scripted({"segment": ["{broken", SEG_OK], "label": [LAB_OK], "cluster": [CLU_OK]})
    b = backend(eng, checker)
    b.prepare([trace()])
    assert b._done["t0"].usage.fallbacks == [] and b._done["t0"].usage.calls == 4
    assert [s.kind for s in b._done["t0"].segmentation.segments] == GOLD_KINDS


def test_hybrid_keeps_the_offline_segmentation_and_asks_labels_and_clusters(checker):
    off = OfflineBackend(checker)
    offline = off.segment(trace())
    n = sum(s.kind == "approach" for s in offline.segments)
    lab = {"approaches": [{"approach": i, "label": "incorrect"} for i in range(1, n + 1)]}
    eng = Scripted({"label": [lab], "cluster": ['{"clusters": [{"members": [1]}]}']})
    b = backend(eng, checker, mode="hybrid")
    b.prepare([trace()])
    j = b._done["t0"]
    assert [(s.start, s.end) for s in j.segmentation.segments] == [(s.start, s.end) for s in offline.segments]
    assert {s.outcome for s in j.segmentation.segments if s.kind == "approach"} == {"incorrect"}
    assert [s for s, _ in eng.batches] == ["label", "cluster", "cluster"]  # bad clusters: retried once
    assert j.usage.fallbacks == [{"step": "cluster", "reason": "bad_clusters"}]


def test_too_long_traces_are_not_sent_and_every_step_is_counted(checker):
    eng = Scripted({"segment": [SEG_OK], "label": [LAB_OK], "cluster": [CLU_OK]})
    b = backend(eng, checker, max_chars=100)
    b.prepare([trace()])
    assert eng.batches == []
    assert [f["step"] for f in b._done["t0"].usage.fallbacks] == ["segment", "label", "cluster"]


def test_answers_are_cached_on_disk_by_model_and_prompt(checker, tmp_path):
    eng = Scripted({"segment": [SEG_OK], "label": [LAB_OK], "cluster": [CLU_OK]})
    b = backend(eng, checker, cache_dir=tmp_path)
    b.prepare([trace()])
    first = b._done["t0"]
    eng2 = Scripted({"segment": ["{}"], "label": ["{}"], "cluster": ["{}"]})
    b2 = backend(eng2, checker, cache_dir=tmp_path)
    b2.prepare([trace()])
    assert eng2.batches == [] and b2.judge.cache_hits == 3  # a rerun asks nothing
    assert b2._done["t0"].usage == first.usage  # and reports the same cost
    (tmp_path / next(p.name for p in tmp_path.iterdir())).open("a").write('{"key": "torn')
    b3 = backend(Scripted({"segment": ["{}"], "label": ["{}"], "cluster": ["{}"]}), checker, cache_dir=tmp_path)
    b3.prepare([trace()])
    assert b3.judge.engine_calls == 0  # a torn last line is ignored


def test_locate_exact_whitespace_and_fuzzy():
    text = "Let me compute:\n2 + 3 = 5,\nthen 5 * 4 = 20.\n\nSo the answer is 20."
    assert locate(text, "2 + 3 = 5,").how == "exact"
    f = locate(text, "2 + 3 = 5, then 5 * 4 = 20.")
    assert f.how == "whitespace" and text[f.start:f.end] == "2 + 3 = 5,\nthen 5 * 4 = 20."
    f = locate(text, "So the answer is 20")  # exact substring
    assert f.how == "exact"
    f = locate(text, "So teh answer is 20.")  # a typo: fuzzy, ratio >= 0.90
    assert f.how == "fuzzy" and text[f.start:f.end] == "So the answer is 20."
    assert locate(text, "So the result equals 21.") is None
    assert locate(text, "Let me compute", 5) is None  # only after `lo`


def test_parsers_reject_what_does_not_fit():
    assert parse_json('Sure! ```json\n{"a": 1}\n``` done') == {"a": 1}
    with pytest.raises(JudgeError, match="bad_json"):
        parse_json("[1, 2]")
    assert parse_clusters('{"clusters": [[2], [1, 3]]}', 3) == [0, 1, 0]
    with pytest.raises(JudgeError, match="bad_clusters"):
        parse_clusters('{"clusters": [[1, 2]]}', 3)
    with pytest.raises(JudgeError, match="coverage"):
        parse_segments('{"segments": [{"kind": "approach", "starts_with": "Let me compute left to right"}]}',
                       TEXT, "t")
    seg = parse_segments(json.dumps(SEG_OK), TEXT, "t")
    assert seg.segments[0].start == 0 and seg.segments[-1].end == len(TEXT)
    assert all(a.end == b.start for a, b in zip(seg.segments, seg.segments[1:], strict=False))


def test_a_judge_config_without_its_model_fails_naming_the_key(checker):
    from dataclasses import asdict

    from dlcot.config import compose
    from dlcot.enhance.llm import make_backend
    from dlcot.errors import ConfigError
    from dlcot.schema import JudgeConfig

    with pytest.raises(ConfigError, match="enhance.judge.model"):
        make_backend("llm", asdict(JudgeConfig()), OfflineBackend(checker))
    with pytest.raises(ConfigError, match="enhance.backend: 'gpt' is not one of offline, llm, hybrid"):
        compose("enhance", ["enhance.backend=gpt"])  # checked once, at composition
