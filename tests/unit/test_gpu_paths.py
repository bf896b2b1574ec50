"""GPU-only settings decided on CPU: attention fallback, master weights, QLoRA's storage and refusal, DPO
padding-free, and the SLURM launch scripts (run with stand-in srun/scontrol/accelerate)."""
from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

from dlcot.config import compose
from dlcot.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_flash_attention_falls_back_to_sdpa_with_a_warning(caplog):
    from dlcot.train.models import attention_implementation

    with caplog.at_level(logging.WARNING, logger="dlcot.train.models"):
        assert attention_implementation("flash_attention_2", on_gpu=False) == "sdpa"
    assert "flash_attention_2" in caplog.text and "sdpa" in caplog.text
    assert attention_implementation("eager", on_gpu=False) == "eager"
    assert attention_implementation(None, on_gpu=True) is None


def test_flash_attention_student_loads_with_sdpa_on_cpu(tiny_qwen_dir):
    from dlcot.train.models import load_model, load_student_tokenizer

    cfg = compose("train", ["student=tiny_qwen2", "student.attn_implementation=flash_attention_2",
                            "train.use_cpu=true"])
    tok = load_student_tokenizer(cfg.student, str(tiny_qwen_dir))
    model = load_model(cfg.student, cfg.train, str(tiny_qwen_dir), tok)
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("env,lora,expected", [
    ({"WORLD_SIZE": "8"}, False, "float32"),  # DDP / FSDP full fine-tuning: fp32 master weights + autocast
    ({"WORLD_SIZE": "8", "ACCELERATE_USE_DEEPSPEED": "true"}, False, "bfloat16"),  # DeepSpeed keeps its own
    ({"WORLD_SIZE": "8"}, True, "bfloat16"),  # LoRA: the frozen base stays bf16, adapters train in fp32
    ({"WORLD_SIZE": "1"}, False, "bfloat16"),  # one process: the configured dtype
])
def test_master_weights_are_fp32_under_ddp_and_fsdp(env, lora, expected):
    from dlcot.train.models import master_dtype

    cfg = compose("train", ["train=sft", f"train.lora.enabled={str(lora).lower()}"])
    assert master_dtype("bfloat16", cfg.train, env) == expected
    assert master_dtype("float32", cfg.train, env) == "float32"


def test_qlora_needs_bitsandbytes_and_stores_4bit_as_bf16(monkeypatch):
    import importlib.util

    import torch

    from dlcot.train import models

    cfg = compose("train", ["train=sft_qlora"])
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        models.quantization_config(cfg.train)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real_find(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'dlcot\[qlora\]'"):
        models.quantization_config(cfg.train)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "bitsandbytes" else real_find(name, *a))
    quant = models.quantization_config(cfg.train)
    assert quant.load_in_4bit and quant.bnb_4bit_quant_storage == torch.bfloat16  # ZeRO-3 / FSDP shardable


def test_dpo_refuses_padding_free_that_trl_would_drop(tmp_path):
    from dlcot.train.dpo import dpo_config

    with pytest.raises(ConfigError, match="padding_free.*silently pad"):
        dpo_config(compose("train", ["train=dpo_cpu_tiny", "train.padding_free=true"]), tmp_path)


def _fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        # srun runs its command once per node, as Slurm does, with that node's SLURM_NODEID
        "srun": 'for n in $(seq 0 $((SLURM_NNODES - 1))); do SLURM_NODEID=$n SLURM_PROCID=$n "$@"; done',
        # a long node list: a script that stops reading it early dies of SIGPIPE under pipefail
        "scontrol": "echo node-a; echo node-b; seq 1 200000 | sed s/^/node-x/",
        "accelerate": 'echo "$@" >> "$CALLS"',
        "dlcot": 'echo "dlcot $@" >> "$CALLS"',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_train_sbatch_gives_each_node_its_own_machine_rank(tmp_path):
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "PATH": f"{_fake_bin(tmp_path)}:{os.environ['PATH']}", "CALLS": str(calls),
           "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "node-[a-b]", "SLURM_PROCID": "0"}
    subprocess.run(["bash", str(REPO / "launch/slurm/train.sbatch"), "recipe=dlcot/raw_vs_enhanced",
                    "student=qwen2_5_7b"], env=env, check=True, cwd=REPO, timeout=60)
    lines = calls.read_text().splitlines()
    ranks = [line.split("--machine_rank ")[1].split()[0] for line in lines]
    assert ranks == ["0", "1"]
    assert all("--num_processes 16" in line and "--main_process_ip node-a" in line for line in lines)
    assert all(line.endswith("-m dlcot.train recipe=dlcot/raw_vs_enhanced student=qwen2_5_7b") for line in lines)


@pytest.mark.parametrize("script", ["train.sbatch", "sweep.sbatch"])
def test_sbatch_log_directory_is_in_the_repository(script):
    """Slurm opens --output before the script runs and does not create its directory."""
    text = (REPO / "launch/slurm" / script).read_text()
    (output,) = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("#SBATCH --output=")]
    log_dir = Path(output).parent
    tracked = subprocess.run(["git", "ls-files", str(log_dir)], cwd=REPO, capture_output=True, text=True).stdout
    assert tracked.strip(), f"{log_dir}/ is not kept in the repository (Slurm would fail to open {output})"


def test_packaged_model_names_are_checked():
    from dlcot.engines.packaged import resolve

    assert resolve("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"  # other names pass through
    with pytest.raises(ConfigError, match="package 'no_such_pkg' is not installed"):
        resolve("pypi:no_such_pkg/model.gguf")
    with pytest.raises(ConfigError, match="no file 'missing.gguf'"):
        resolve("pypi:dlcot/missing.gguf")
