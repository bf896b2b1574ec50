"""`dlcot eval` end to end with tiny real students on 10 problems of each local benchmark, through the same
CLI path a user runs; resume and the contract files (predictions.jsonl, metrics.json, report.md)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dlcot.commands import run_command
from dlcot.errors import ConfigError, ModelError

pytestmark = pytest.mark.shared_data
CONTRACT = {"n", "accuracy", "pass_at_k", "mean_tokens", "answerless_rate", "benchmark", "model", "tokenizer",
            "maj_at_k", "median_tokens", "tokens_per_correct", "truncated_rate", "markers_per_response",
            "accuracy_strict", "unmarked_rate"}


@pytest.mark.parametrize("benchmark", ["gsm8k", "math500", "aime24", "synthetic"])
def test_tiny_qwen_on_each_local_benchmark(benchmark, tiny_qwen_dir, tmp_path, shared_data):
    out = run_command("eval", [f"model={tiny_qwen_dir}", f"benchmark={benchmark}", f"output={tmp_path}",
                               "eval.limit=10", "engine.max_new_tokens=16", "engine.batch_size=8"])
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) >= CONTRACT
    assert (m["n"], m["n_input"], m["n_rejected"], m["benchmark"]) == (10, 10, 0, benchmark)
    assert m["model"] == m["tokenizer"] == str(tiny_qwen_dir)
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 10 and len({p["id"] for p in preds}) == 10
    for p in preds:
        assert {"id", "response", "extracted", "correct", "sample", "n_tokens", "finish_reason", "reason"} <= set(p)
        assert 0 <= p["n_tokens"] <= 16 and p["finish_reason"] in ("stop", "length")
    assert m["mean_tokens"] == pytest.approx(sum(p["n_tokens"] for p in preds) / 10)
    assert m["answerless_rate"] == pytest.approx(sum(p["extracted"] is None for p in preds) / 10)
    assert (out / "report.md").exists() and (out / "config.yaml").exists()
    if benchmark == "math500":
        assert set(m["breakdown"]) == {"subject", "level"}


@pytest.mark.slow  # two CLI processes: ~25 s of imports
def test_cli_process_with_sampling_and_resume(tiny_llama_dir, tmp_path, shared_data):
    args = [sys.executable, "-m", "dlcot.cli", "eval", f"model={tiny_llama_dir}", "benchmark=gsm8k",
            f"output={tmp_path}", "eval.limit=4", "eval.n=3", "eval.k=[1,2,3]", "eval.temperature=1.0",
            "eval.max_new_tokens=8"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"dlcot eval: wrote {tmp_path}" in done.stdout
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert (m["n"], m["n_samples"], m["n_responses"]) == (4, 3, 12) and set(m["pass_at_k"]) == {"1", "2", "3"}
    first = (tmp_path / "predictions.jsonl").read_text()
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already answered" in again.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["problems_generated"] == 0
    assert (tmp_path / "predictions.jsonl").read_text() == first


def test_bad_model_and_benchmark_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="unknown benchmark"):
        run_command("eval", [f"model={tmp_path}", "benchmark=math5000", f"output={tmp_path}"])
    with pytest.raises(ModelError, match="no tokenizer files"):
        run_command("eval", [f"model={tmp_path}", "benchmark=gsm8k", f"output={tmp_path / 'o'}", "eval.limit=1"])
    with pytest.raises(ConfigError, match="needs model=PATH"):
        run_command("eval", ["benchmark=gsm8k", f"output={tmp_path / 'o'}", "eval.limit=1"])
