"""`dlcot sweep` end to end at CI size: a 2-student grid plus one bad job through the real CLI.

Each job is `dlcot run recipe=sweeps/distill_one` in its own process; a bad job fails alone and is recorded, the
good ones share one generated trace set and are reported in one table, and a rerun of the sweep redoes no
finished stage.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

CI_SIZE = ["data.n_problems=24", "data.heldout=6", "train.max_steps=4", "train.save_steps=2", "engine.batch_size=6",
           "engine.max_new_tokens=24", "student.tiny.vocab_size=512", "student.tiny.hidden_size=64",
           "student.tiny.num_layers=2", "student.tiny.intermediate_size=128"]


@pytest.mark.slow  # ~70 s; the array-task test below keeps a sweep in the default suite
@pytest.mark.timeout(600)
def test_sweep_runs_each_job_alone_reports_them_together_and_resumes(tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "dlcot.cli", "sweep", "recipe=sweeps/distill_one", *CI_SIZE,
           f"runs_dir={tmp_path / 'runs'}", f"output={out}", "-m", "student=tiny_qwen2,tiny_llama,no_such_student"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert first.returncode != 0
    assert "1 of 3 sweep jobs failed (student-no_such_student)" in first.stderr, first.stderr[-3000:]

    jobs = json.loads((out / "sweep.json").read_text())["jobs"]
    assert [(j["name"], j["status"]) for j in jobs] == [
        ("student-tiny_qwen2", "ok"), ("student-tiny_llama", "ok"), ("student-no_such_student", "failed")]
    for j in jobs[:2]:  # each job is a run of its own: its own resolved config and stages
        assert (out / j["name"] / "eval" / "metrics.json").is_file()
        assert f"  name: {j['overrides'][0].split('=')[1]}\n" in (out / j["name"] / "sft" / "config.yaml").read_text()
    # traces and enhanced data are `share: true` and read no student: made once, in runs/shared, for both jobs
    chains = [json.loads((out / j["name"] / "chain.json").read_text())["stages"] for j in jobs[:2]]
    for stage, command in (("traces", "generate"), ("data", "enhance")):
        made = {c[stage] for c in chains}
        assert len(made) == 1 and f"{tmp_path / 'runs' / 'shared'}/{command}-" in made.pop()
    with open(out / "report.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["student"], r["homologous"]) for r in rows) == [("tiny_llama", "False"), ("tiny_qwen2", "True")]

    # one job of the good grid alone, as a SLURM array task would: its stages are done, so nothing is redone, and
    # as the other job has finished too, this task makes the report
    trained = {j["name"]: (out / j["name"] / "sft" / "train_stats.json").stat().st_mtime_ns for j in jobs[:2]}
    good = [a for a in cmd if not a.startswith("student=")] + ["student=tiny_qwen2,tiny_llama"]
    again = subprocess.run([*good, "--job=1"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"wrote {out / 'report.md'}" in again.stdout
    assert {n: (out / n / "sft" / "train_stats.json").stat().st_mtime_ns for n in trained} == trained


@pytest.mark.slow  # ~35 s; the grid and job selection are unit-tested in test_sweep_grid.py
def test_an_array_task_runs_its_job_only_and_leaves_the_report_to_the_last(tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "dlcot.cli", "sweep", "recipe=sweeps/distill_one", *CI_SIZE, "train.max_steps=1",
           f"runs_dir={tmp_path / 'runs'}", f"output={out}", "-m", "seed=1,2", "--job=1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {out}\n" in done.stdout and not (out / "report.md").exists()
    jobs = json.loads((out / "sweep.json").read_text())["jobs"]
    assert [(j["name"], j["status"]) for j in jobs] == [("seed-1", "pending"), ("seed-2", "ok")]
    assert not (out / "seed-1").exists() and (out / "seed-2" / "eval" / "metrics.json").is_file()
    bad = subprocess.run([*cmd[:-1], "--job=2"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--job=2: give one job number in 0..1" in bad.stderr
