"""Tiny real students (`student.model=tiny:<family>`) for tests and the CPU demo.

A tiny model here is a real `Qwen2ForCausalLM` / `LlamaForCausalLM` with a real tokenizer and our training chat
template, saved with `save_pretrained` and reloaded by callers through the same `AutoModelForCausalLM` /
`AutoTokenizer.from_pretrained` path a real checkpoint takes, so tests exercise the loading code the cluster runs.

The tokenizers are trained locally on a small corpus (1k tokens by default): the real Qwen2 vocabulary has 151k
entries, and its embedding + lm_head would dominate a 64-wide model and make CPU training ~50x slower. The two
families use different pre-tokenizers on purpose, so code that silently assumes one tokenizer shows up in tests.

Trap this module avoids (see docs/stack.md): a directory whose config says `model_type: qwen2` always
reloads as `Qwen2Tokenizer`, which rebuilds Qwen's NFC normalizer and digit-splitting pre-tokenizer; the tiny Qwen
tokenizer is therefore trained with exactly that pipeline so it encodes identically after save/reload.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Tokenizer,
    TokenizersBackend,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
THINK_TOKENS = ("<think>", "</think>")


@dataclass(frozen=True)
class Family:
    """What differs between tiny student families: special tokens, their roles, and the chat template file."""
    specials: tuple[str, ...]
    bos: str | None
    eos: str  # the end-of-turn token: generation stops on it and the assistant mask must end on it
    pad: str
    template: str


FAMILIES: dict[str, Family] = {
    "qwen": Family(("<|endoftext|>", "<|im_start|>", "<|im_end|>"), bos=None, eos="<|im_end|>",
                   pad="<|endoftext|>", template="qwen2_5.jinja"),
    "llama": Family(("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                     "<|eot_id|>", "<|finetune_right_pad_id|>"), bos="<|begin_of_text|>", eos="<|eot_id|>",
                    pad="<|finetune_right_pad_id|>", template="llama3.jinja"),
}

# Always in the corpus, so digits, operators and the answer format get merges whatever the caller passes.
_ALPHABET_TEXT = (
    "0 1 2 3 4 5 6 7 8 9 10 100 + - * / = < > ( ) [ ] { } ^ _ . , : ; ! ? % $ \\ | ' \" # & ~ @ "
    "\\boxed{4} \\frac{1}{2} \\sqrt{2} \\times \\cdot \\pi x y z n"
)
# Small English + arithmetic + think-format text: enough for `build_tiny_model()` with no arguments.
DEFAULT_CORPUS = (
    "Question: What is 2 + 2?\n<think>\nI add 2 and 2. 2 + 2 = 4.\n</think>\n\nThe answer is \\boxed{4}.",
    "Tom has 3 apples and buys 5 more. How many apples does he have now?",
    "<think>\nFirst, 3 + 5 = 8. Wait, let me check: 8 - 5 = 3. Yes.\n</think>\n\nTom has \\boxed{8} apples.",
    "Let x = 12. Then 2x + 7 = 31, so the result is 31. Alternatively, 12 * 2 = 24 and 24 + 7 = 31.",
    "The quick brown fox jumps over the lazy dog. A student reasons step by step before answering.",
    "Compute 45 / 9 - 1. We get 45 / 9 = 5, and 5 - 1 = 4. Therefore the final answer is 4.",
    "You are a helpful assistant. Please reason step by step, and put your final answer within \\boxed{}.",
)


def family_spec(name: str) -> Family:
    """The `Family` for `name`, with an error that lists the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown tiny-model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def _train_bpe(corpus: Iterable[str], vocab_size: int, reserved: list[str], normalizer, pre_tokenizer
               ) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE vocab + merges; `reserved` get the first ids, all 256 byte symbols are in the alphabet."""
    tok = Tokenizer(BPE())
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    trainer = BpeTrainer(vocab_size=vocab_size, special_tokens=reserved, show_progress=False,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([*corpus, _ALPHABET_TEXT], trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]
    return model["vocab"], merges


def train_tiny_tokenizer(family: str, corpus: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerBase:
    """A small byte-level BPE tokenizer for `family` ("qwen" | "llama") trained on `corpus`.

    `vocab_size` is an upper bound: a small corpus yields fewer merges (the default corpus gives ~500 tokens).

    Both encode any text (all 256 bytes are base symbols), have `<think>` / `</think>` as single non-special added
    tokens (they survive `skip_special_tokens=True`, as the thought must), and carry the family's chat template.
    "qwen" is a `Qwen2Tokenizer` built with Qwen2's own normalizer and pre-tokenizer (digits split one by one), so
    it round-trips through a `model_type: qwen2` directory. "llama" is a generic fast tokenizer with GPT-2 style
    pre-tokenization (digit runs kept together) that prepends `<|begin_of_text|>` like Llama 3.
    """
    spec = family_spec(family)
    reserved = [*spec.specials, *THINK_TOKENS]
    if family == "qwen":
        pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        vocab, merges = _train_bpe(corpus, vocab_size, reserved, normalizers.NFC(), pre)
        tok: PreTrainedTokenizerBase = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None,
                                                      eos_token=spec.eos, pad_token=spec.pad)
    else:
        vocab, merges = _train_bpe(corpus, vocab_size, reserved, None,
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
        backend = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        backend.decoder = decoders.ByteLevel()
        tok = TokenizersBackend(tokenizer_object=backend, bos_token=spec.bos, eos_token=spec.eos,
                                pad_token=spec.pad, add_bos_token=True, clean_up_tokenization_spaces=False)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in spec.specials], special_tokens=True)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    tok.chat_template = (TEMPLATES_DIR / spec.template).read_text()
    return tok


def build_tiny_model(
    family: str,
    out_dir: str | Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 2048,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Path:
    """Build, seed and save a tiny randomly initialised student of `family` ("qwen" | "llama") to `out_dir`.

    The tokenizer is trained on `corpus` (default: a small built-in English + arithmetic text) unless `tokenizer`
    is given (e.g. a real Qwen2 tokenizer); the embedding is sized to `len(tokenizer)` either way. bos/eos/pad ids
    agree between tokenizer, config and generation_config, with eos the family's end-of-turn token so `generate`
    stops where the chat template ends an assistant turn. Returns `out_dir`, loadable with
    `AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained`.
    """
    spec = family_spec(family)
    if isinstance(corpus, str):
        raise ValueError(f"build_tiny_model(corpus={corpus!r}): pass a list of texts, or None for the default")
    tok = tokenizer if tokenizer is not None else train_tiny_tokenizer(
        family, corpus if corpus is not None else DEFAULT_CORPUS, vocab_size)
    missing = [t for t in (spec.eos, spec.pad) if t not in tok.get_vocab()]
    if missing:
        raise ValueError(f"build_tiny_model({family!r}): the tokenizer lacks this family's tokens {missing}; "
                         f"pass a {family} tokenizer, or none to train one")
    eos_id, pad_id = tok.convert_tokens_to_ids(spec.eos), tok.convert_tokens_to_ids(spec.pad)
    # Qwen tokenizers have no bos token; Qwen2.5 configs still name <|endoftext|> (our pad) as bos_token_id.
    bos_id = tok.bos_token_id if tok.bos_token_id is not None else pad_id
    ids = {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": pad_id}
    shape = dict(vocab_size=len(tok), hidden_size=hidden_size, num_hidden_layers=num_layers,
                 num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
                 intermediate_size=intermediate_size, max_position_embeddings=max_position_embeddings,
                 tie_word_embeddings=True, **ids)
    torch.manual_seed(seed)
    model: PreTrainedModel
    if family == "qwen":
        model = Qwen2ForCausalLM(Qwen2Config(**shape))
    else:
        model = LlamaForCausalLM(LlamaConfig(**shape))
    model.generation_config = GenerationConfig(**ids)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
