"""The main job end to end at CI size: generate → raw/enhanced → 2 families × 2 datasets SFT → eval → report.

Runs `recipes/quickstart_ci.yaml` (the quickstart's stages at test size) through the real CLI in a subprocess,
kills it mid-way, resumes it, checks the report, and checks that a rerun of the finished chain does no work.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STAGES = ["traces", "raw", "enhanced", "sft_qwen_raw", "sft_qwen_enhanced", "sft_llama_raw", "sft_llama_enhanced",
          "eval_qwen_raw", "eval_qwen_enhanced", "eval_llama_raw", "eval_llama_enhanced", "report"]


def _cmd(out: Path, runs: Path) -> list[str]:
    return [sys.executable, "-m", "dlcot.cli", "run", "recipe=quickstart_ci", f"output={out}", f"runs_dir={runs}"]


@pytest.mark.slow  # ~60-90 s; chains are covered by test_chain.py and the key-factors tiny chain
@pytest.mark.timeout(600)
def test_quickstart_chain_killed_resumes_and_reports(tmp_path):
    out, runs = tmp_path / "chain", tmp_path / "runs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(_cmd(out, runs), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not (out / "sft_qwen_raw" / ".done.json").exists():  # kill once the first student is trained
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "report" / ".done.json").exists()

    done = subprocess.run(_cmd(out, runs), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {out / 'report' / 'report.md'}" in done.stdout
    chain = json.loads((out / "chain.json").read_text())
    assert set(chain["stages"]) == {"run", *STAGES}
    assert chain["seconds"]["traces"] == 0.0 and chain["seconds"]["sft_qwen_raw"] == 0.0  # finished before the kill

    with open(out / "report" / "report.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4  # one row per evaluated student
    assert {(r["family"], r["homologous"], r["data"]) for r in rows} == {
        ("qwen", "True", "raw"), ("qwen", "True", "enhanced (dlcot)"),
        ("llama", "False", "raw"), ("llama", "False", "enhanced (dlcot)")}
    assert all(int(r["train_tokens"]) > 0 and r["benchmark"] == "synthetic" for r in rows)
    assert (out / "report" / "accuracy_vs_tokens.png").stat().st_size > 0

    # a rerun of a finished chain does no work
    def stage_files() -> dict[Path, int]:  # the chain's own config.yaml/chain.json are rewritten; stages are not
        return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.parent != out}

    before = stage_files()
    again = subprocess.run(_cmd(out, runs), env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(json.loads((out / "chain.json").read_text())["seconds"].values()) == {0.0}
    assert stage_files() == before
