"""The chain runner: stage outputs feed later stages, finished stages are skipped, a failed chain resumes."""
from __future__ import annotations

import json

import pytest

from dlcot.chain import _substitute
from dlcot.cli import run_command
from dlcot.errors import ConfigError


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
