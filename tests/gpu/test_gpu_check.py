"""The GPU smoke check as a pytest item: skipped without CUDA; on a GPU it runs tests/gpu/gpu_check.py (each step
its own line) and fails if any step failed. `make gpu-check` runs the same script on a GPU image's own Python."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_gpu_check_steps_pass():
    script = Path(__file__).with_name("gpu_check.py")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert "FAIL" not in proc.stdout
