"""`accelerate launch -m dlcot.train` with 2 CPU ranks: plain DDP over gloo (launch/cpu2.yaml) and DeepSpeed
ZeRO-2 (launch/zero2.yaml), for SFT and for DPO (whose reference model DeepSpeed must prepare too). Both see the
same batches, so their loss curves must agree."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import pairs, traces, write_traces

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = Path(sys.executable).with_name("accelerate")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("dist")
    write_traces(path / "traces.jsonl", traces(8))
    write_traces(path / "pairs.jsonl", pairs(8))
    return path


STAGES = {"sft": ("train=sft_cpu_tiny", "traces.jsonl"), "dpo": ("train=dpo_cpu_tiny", "pairs.jsonl")}


def _launch(workdir: Path, stage: str, name: str, *launch_args: str) -> dict:
    out = workdir / f"{stage}_{name}"
    train, data = STAGES[stage]
    cmd = [str(ACCELERATE), "launch", *launch_args, "-m", "dlcot.train", "student=tiny_qwen2",
           train, f"train.data={workdir / data}", f"output={out}",
           f"runs_dir={workdir / 'runs'}", "train.max_steps=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["world_size"] == 2 and stats["global_step"] == 4
    assert all(math.isfinite(loss) for _, loss in stats["loss"]["curve"])
    assert (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
    return stats


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_two_gloo_ranks_and_zero2_agree(workdir, stage):
    ddp = _launch(workdir, stage, "ddp", "--config_file", "launch/cpu2.yaml")
    zero2 = _launch(workdir, stage, "zero2", "--config_file", "launch/zero2.yaml", "--num_processes", "2")
    assert ddp["stage"] == zero2["stage"] == stage
    assert ddp["tokens_seen"] == zero2["tokens_seen"] > 0
    for (s1, a), (s2, b) in zip(ddp["loss"]["curve"], zero2["loss"]["curve"], strict=True):
        assert s1 == s2 and a == pytest.approx(b, rel=1e-3)
