"""Every launch config parses as accelerate reads it, DeepSpeed JSONs load, every student names real files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlcot.config import compose, list_options
from dlcot.train.models import TEMPLATES_DIR

REPO = Path(__file__).resolve().parents[2]
LAUNCH = sorted((REPO / "launch").glob("*.yaml"))


def test_launch_dir_has_the_documented_configs():
    assert {p.stem for p in LAUNCH} >= {"ddp", "zero2", "zero3", "zero3_offload", "fsdp", "cpu2"}


@pytest.mark.parametrize("path", LAUNCH, ids=[p.stem for p in LAUNCH])
def test_launch_config_parses(path, monkeypatch):
    from accelerate.commands.config.config_args import load_config_from_file

    monkeypatch.chdir(REPO)  # DeepSpeed JSON paths are relative to the repository root, where users launch
    cfg = load_config_from_file(str(path))
    assert cfg.num_processes >= 2 and cfg.num_machines == 1
    ds = (cfg.deepspeed_config or {}).get("deepspeed_config_file")
    if str(cfg.distributed_type).endswith("DEEPSPEED"):
        conf = json.loads((REPO / ds).read_text())
        stage = int(path.stem[len("zero")])
        assert conf["zero_optimization"]["stage"] == stage
        assert ("offload" in path.stem) == ("offload_optimizer" in conf["zero_optimization"])


def test_every_deepspeed_json_loads():
    files = sorted((REPO / "launch" / "deepspeed").glob("*.json"))
    assert files
    for f in files:
        assert "zero_optimization" in json.loads(f.read_text()), f


@pytest.mark.parametrize("student", list_options("student"))
def test_student_template_exists_and_closes_turns_with_its_eos(student):
    cfg = compose("train", [f"student={student}"]).student
    assert cfg.chat_template, f"{student}: chat_template must be set"
    text = (TEMPLATES_DIR / cfg.chat_template).read_text()
    assert "{%- generation" in text or "{% generation" in text
    # the literal token, or the tokenizer's `eos_token` (load_student_tokenizer sets it to student.eos_token: alpaca)
    assert cfg.eos_token and (cfg.eos_token in text or "+ eos_token" in text), \
        f"{student}: eos {cfg.eos_token!r} not in {cfg.chat_template}"
    assert cfg.lora_target_modules
