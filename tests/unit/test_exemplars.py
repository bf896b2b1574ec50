"""`cot.granularity=k` shows an engine teacher one released CoT of level k (dlcot.data.exemplars), never the problem
itself, and `dlcot generate` keeps the teacher's answer in the release's form (no <think> block needed)."""
from __future__ import annotations

import json

import pytest

from dlcot.commands import run_command
from dlcot.config import compose
from dlcot.data.exemplars import exemplar_entry, exemplar_for, exemplar_prompt, uses_exemplar
from dlcot.data.llamafactory import problem_key
from dlcot.errors import ConfigError
from tests.llamafactory_fixtures import PROBLEMS, release


def _cot(info, *overrides: str):
    return compose("generate", [f"cot.exemplar_info={info}", *overrides]).cot


def test_the_exemplar_is_a_released_row_of_the_level_and_never_the_problem(tmp_path):
    info = release(tmp_path)
    cot = _cot(info, "cot.granularity=2")
    assert uses_exemplar(cot) and exemplar_entry(cot) == "SVAMP_ChatGPT_level2"
    rows = json.loads((tmp_path / "l2.json").read_text())
    assert exemplar_for(cot, "Some other problem?") == (rows[0]["instruction"], rows[0]["output"])
    assert exemplar_for(cot, "  " + PROBLEMS[0]) == (rows[1]["instruction"], rows[1]["output"])  # not itself
    prompt = exemplar_prompt(cot, "What is 1 + 1?", lambda q: q)
    assert prompt.index(rows[0]["output"]) < prompt.index("What is 1 + 1?") and prompt.endswith("Answer:")
    assert not uses_exemplar(_cot(info, "cot.granularity=2", "cot.guide=instruction"))
    assert not uses_exemplar(_cot(info))  # no level: the teacher's own CoT
    with pytest.raises(ConfigError, match="cot.guide: 'shown' is not one of exemplar, instruction"):
        uses_exemplar(_cot(info, "cot.granularity=2", "cot.guide=shown"))


def test_generate_prompts_with_the_levels_exemplar_and_keeps_the_answer_as_is(tmp_path):
    """`dlcot generate data=kf_svamp cot.granularity=k`: the release's training problems (held-out ones left out),
    each prompted with the level-k exemplar; the teacher's answer is kept whole in the release's form."""
    info = release(tmp_path)
    rules = ["engine.rules.default='Two. The answer is 4'",  # level 1's exemplar is short; level 2's reaches here:
             "+engine.rules.starts='Sam starts with some, then buys more: a + b. The answer is 4'"]
    args = ["data=kf_svamp", f"data.dataset_info={info}", "data.heldout=2", "teacher=gpt4o", "engine=scripted",
            *rules, f"cot.exemplar_info={info}"]
    by_level = {}
    for level in (1, 2):
        out = run_command("generate", [*args, f"cot.granularity={level}", f"output={tmp_path / str(level)}"])
        traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
        assert len(traces) == 4 and all(t["id"].startswith("SVAMP_only_ans/") for t in traces)
        assert {t["problem"].split()[2] for t in traces} <= {"3", "10", "7", "2", "6", "8"}
        assert all(t["cot_granularity"] == level and t["response"] == "" for t in traces)
        by_level[level] = {problem_key(t["problem"]): t["reasoning"] for t in traces}
        stats = json.loads((out / "stats.json").read_text())
        assert stats["n_kept"] == 4 and stats["reject_reasons"] == {"heldout": 2}
    assert set(by_level[1].values()) == {"Two. The answer is 4"}
    long = "Sam starts with some, then buys more: a + b. The answer is 4"
    # level 2's exemplar is its row 0, except for row 0's own problem, shown row 1 (not "Sam starts ...")
    assert by_level[2] == {p: "Two. The answer is 4" if p == PROBLEMS[0] else long for p in by_level[1]}
    assert PROBLEMS[0] in by_level[2]  # (row 0 is not among the held-out problems of this fixture)


def test_a_format_sweep_shows_the_formats_own_release_at_that_level():
    cot = lambda *o: compose("generate", list(o)).cot  # noqa: E731
    assert exemplar_entry(cot("cot.format=sym", "cot.granularity=3")) == "svamp_bloom_sym"
    assert exemplar_entry(cot("cot.format=rar", "cot.granularity=5")) == "svamp_gemma_rar"
    assert exemplar_entry(cot("cot.granularity=6")) == "SVAMP_ChatGPT_level6"
    with pytest.raises(ConfigError, match="cot.exemplar_entries key bsm/4 or bsm"):
        exemplar_entry(cot("cot.format=bsm", "cot.granularity=4"))


@pytest.mark.shared_data
def test_the_gsm8k_recipe_shows_released_gsm8k_exemplars_never_svamp_ones(shared_data):
    """recipe=key_factors/cot_distill generates on GSM8K problems: levels 1-2 show Llama-3-70B's released GSM8K CoT;
    a level or format with no GSM8K exemplar is refused (pointing at cot.guide=instruction), not shown SVAMP."""
    if not (shared_data / "keyfactors" / "gsm8k_llama_level2_ranked.json").is_file():
        pytest.skip("../shared/data/keyfactors not found")
    info = f"cot.exemplar_info={shared_data / 'keyfactors' / 'dataset_info.json'}"
    cot = lambda *o: compose("generate", ["recipe=key_factors/cot_distill", info, *o]).cot  # noqa: E731
    for level in (1, 2):
        assert exemplar_entry(cot(f"cot.granularity={level}")) == f"GSM8k_llama_level{level}"
        problem, shown = exemplar_for(cot(f"cot.granularity={level}"), "Some GSM8K problem?")
        released = json.loads((shared_data / "keyfactors" / f"gsm8k_llama_level{level}_ranked.json").read_text())
        assert (problem, shown) == (released[0]["instruction"].strip(), released[0]["output"].strip())
    for bad in (["cot.granularity=3"], ["cot.granularity=6"], ["cot.format=bsm", "cot.granularity=3"]):
        with pytest.raises(ConfigError, match="non-empty cot.exemplar_entries key .*cot.guide=instruction"):
            exemplar_entry(cot(*bad))
    assert not uses_exemplar(cot("cot.granularity=6", "cot.guide=instruction"))
    # the SVAMP defaults still hold where no recipe switches them off
    assert exemplar_entry(compose("generate", ["cot.granularity=3"]).cot) == "SVAMP_ChatGPT_level3"


def test_a_level_without_an_exemplar_fails_before_the_teacher_loads(tmp_path, monkeypatch):
    import dlcot.engines as engines

    info = release(tmp_path)
    monkeypatch.setattr(engines, "make_engine", lambda *a, **k: pytest.fail("the engine was loaded"))
    with pytest.raises(ConfigError, match="cot/4"):
        run_command("generate", ["data=kf_svamp", f"data.dataset_info={info}", "teacher=gpt4o", "engine=scripted",
                                 "teacher.model=x", "data.heldout=2", f"cot.exemplar_info={info}", "cot.granularity=4",
                                 "cot.exemplar_entries.cot=''", f"output={tmp_path / 'out'}"])
