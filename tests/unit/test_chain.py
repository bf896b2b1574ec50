"""The chain runner: stage outputs feed later stages, finished stages are skipped, a failed chain resumes."""
from __future__ import annotations

import json

import pytest

from dlcot.commands import run_command
from dlcot.errors import ConfigError
from dlcot.orchestrate.chain import _substitute


def test_substitute_only_replaces_stage_names(tmp_path):
    dirs = {"run": tmp_path, "traces": tmp_path / "traces"}
    names = {"run", "traces", "later"}
    out = _substitute(["input={traces}/traces.jsonl", "train.prompt_template={problem}?", "runs={run}"], dirs, "s",
                      names)
    assert out == [f"input={tmp_path}/traces/traces.jsonl", "train.prompt_template={problem}?", f"runs={tmp_path}"]
    with pytest.raises(ConfigError, match="not an earlier stage"):
        _substitute(["x={later}"], dirs, "s", names)


def _stages(second: str) -> str:
    return ("stages=[{name:a,command:generate,overrides:['data.n_problems=3']},"
            "{name:b,command:generate,overrides:['" + second + "']}]")


def test_rerun_skips_done_stages_and_failed_chain_resumes(tmp_path):
    out = tmp_path / "chain"
    # stage b fails (invalid override): stage a is done and recorded, b is not
    with pytest.raises(ConfigError):
        run_command("run", [_stages("data.n_problems=oops"), f"output={out}"])
    done_a = json.loads((out / "a" / ".done.json").read_text())
    assert not (out / "b" / ".done.json").exists()
    mtime_a = (out / "a" / "traces.jsonl").stat().st_mtime_ns
    # fixed rerun: a is skipped (untouched), b runs
    root = run_command("run", [_stages("data.n_problems=2"), f"output={out}"])
    assert (out / "a" / "traces.jsonl").stat().st_mtime_ns == mtime_a
    assert json.loads((out / "a" / ".done.json").read_text()) == done_a
    assert len((out / "b" / "traces.jsonl").read_text().splitlines()) == 2
    chain = json.loads((root / "chain.json").read_text())
    assert set(chain["stages"]) == {"run", "a", "b"} and chain["seconds"]["a"] == 0.0
    # a changed stage config reruns that stage only
    run_command("run", [_stages("data.n_problems=4"), f"output={out}"])
    assert (out / "a" / "traces.jsonl").stat().st_mtime_ns == mtime_a
    assert len((out / "b" / "traces.jsonl").read_text().splitlines()) == 4


def test_recipe_without_stages_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="lists no `stages`"):
        run_command("run", [f"output={tmp_path}"])


def test_a_shared_stage_runs_once_for_every_chain_that_agrees_on_what_it_reads(tmp_path):
    stages = "stages=[{name:a,command:generate,share:true,overrides:['data.n_problems=3']}]"
    runs = f"runs_dir={tmp_path / 'runs'}"
    first = json.loads((run_command("run", [stages, runs, f"output={tmp_path / 'c1'}"]) / "chain.json").read_text())
    shared = first["stages"]["a"]
    assert shared.startswith(str(tmp_path / "runs" / "shared" / "generate-"))
    mtime = (tmp_path / shared / "traces.jsonl").stat().st_mtime_ns
    # another chain (another sweep job) with a different student: generate reads no student, so it is reused
    second = json.loads((run_command("run", [stages, runs, "student=tiny_llama", f"output={tmp_path / 'c2'}"])
                         / "chain.json").read_text())
    assert second["stages"]["a"] == shared and second["seconds"]["a"] == 0.0
    assert (tmp_path / shared / "traces.jsonl").stat().st_mtime_ns == mtime
    # a change to what it reads (the seed, the teacher's problems) makes a new shared output
    third = json.loads((run_command("run", [stages, runs, "seed=1", f"output={tmp_path / 'c3'}"])
                        / "chain.json").read_text())
    assert third["stages"]["a"] != shared and third["seconds"]["a"] > 0
    with pytest.raises(ConfigError, match="share is for in-process generate, mcts, enhance stages"):
        run_command("run", ["stages=[{name:t,command:train,share:true}]", runs, f"output={tmp_path / 'c4'}"])
