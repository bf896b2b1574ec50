"""Shared fixtures: tiny real students (built once per session), the shared data dir, an offline environment."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}

# Set at import, not only in a fixture: huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported
# (by the test modules, after this file), and session fixtures run before any function-scoped fixture.
os.environ.update(OFFLINE_ENV)
if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n N`: one torch thread per worker (before torch is imported)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Hub, no wandb, no tokenizers fork warnings, and restored after tests that change them."""
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Qwen2 student (local 1k-vocab tokenizer, qwen2_5 template); load with from_pretrained."""
    from dlcot.train.tiny import build_tiny_model

    return build_tiny_model("qwen", tmp_path_factory.mktemp("tiny_qwen"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Llama student (local 1k-vocab tokenizer, llama3 template); load with from_pretrained."""
    from dlcot.train.tiny import build_tiny_model

    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`<repo root>/../shared/data` (teacher traces, benchmarks); tests using it skip where it is absent."""
    path = (REPO_ROOT.parent / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"../shared/data not found: {path}")
    return path
