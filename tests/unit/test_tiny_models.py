"""Tiny students: they reload through `from_pretrained` unchanged, and our chat templates keep the thought and
train the end-of-turn token."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from real_models import real_qwen2_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils.chat_template_utils import render_jinja_template

from dlcot.train.models import template_text
from dlcot.train.tiny import DEFAULT_CORPUS, FAMILIES, THINK_TOKENS, build_tiny_model, train_tiny_tokenizer

# TRL's copies of the models' own templates (found without importing trl, which takes seconds).
TRL_TEMPLATES = Path(next(iter(importlib.util.find_spec("trl").submodule_search_locations))) / "chat_templates"
ANSWER = "<think>\nreasoning\n</think>\n\nThe answer is \\boxed{4}."
CHAT = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": ANSWER}]
# Digits (Qwen splits them one by one), a decomposed é (NFC composes it), a ligature, emoji, CJK, think tags.
SAMPLE = "Compute 12345 + 678 = 13023, 100 / 4.\nCafe\u0301 \ufb01 😀 日本 <think>\nok\n</think>\n\n\\boxed{4}"


@pytest.fixture(params=["qwen", "llama"])
def tiny_dir(request: pytest.FixtureRequest) -> Path:
    """Each family's session-built tiny student."""
    return request.getfixturevalue(f"tiny_{request.param}_dir")


def masked_text(tok, messages: list[dict]) -> tuple[list[str], list[int]]:
    """The assistant-masked token spans of `messages`, each decoded, and the id of the last masked token."""
    out = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask)
    spans, cur = [], []
    for i, m in zip(ids, mask, strict=True):
        if m:
            cur.append(i)
        elif cur:
            spans.append(cur)
            cur = []
    spans += [cur] if cur else []
    last = max(k for k, m in enumerate(mask) if m)
    return [tok.decode(s) for s in spans], [ids[last]]


@pytest.mark.parametrize("family", ["qwen", "llama"])
def test_reload_keeps_tokenization_and_generates(family: str, tmp_path: Path) -> None:
    before = train_tiny_tokenizer(family, DEFAULT_CORPUS)
    ids = before(SAMPLE).input_ids
    d = build_tiny_model(family, tmp_path, tokenizer=before)
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d)
    # The Qwen2 trap: a `model_type: qwen2` dir reloads as Qwen2Tokenizer with Qwen's own pre-tokenizer.
    assert tok(SAMPLE).input_ids == ids
    assert tok.decode(tok(SAMPLE).input_ids, skip_special_tokens=True).endswith("\\boxed{4}")
    spec = FAMILIES[family]
    assert type(model).__name__ == {"qwen": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}[family]
    assert model.config.vocab_size == len(tok)
    eos_id = tok.convert_tokens_to_ids(spec.eos)
    assert tok.eos_token == spec.eos and tok.pad_token == spec.pad
    assert model.config.eos_token_id == model.generation_config.eos_token_id == eos_id
    assert model.config.pad_token_id == model.generation_config.pad_token_id == tok.pad_token_id
    assert model.config.bos_token_id == model.generation_config.bos_token_id
    for t in THINK_TOKENS:  # single, non-special tokens: they survive skip_special_tokens
        assert len(tok(t, add_special_tokens=False).input_ids) == 1
        assert tok.decode(tok(t, add_special_tokens=False).input_ids, skip_special_tokens=True) == t
    inputs = tok.apply_chat_template(CHAT[:1], add_generation_prompt=True, return_dict=True, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_same_weights_for_same_seed(tmp_path: Path, tiny_qwen_dir: Path) -> None:
    again = build_tiny_model("qwen", tmp_path / "again")
    a, b = (AutoModelForCausalLM.from_pretrained(d) for d in (tiny_qwen_dir, again))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    other = AutoModelForCausalLM.from_pretrained(build_tiny_model("qwen", tmp_path / "seed1", seed=1))
    assert not torch.equal(a.lm_head.weight, other.lm_head.weight)


def test_families_tokenize_differently() -> None:
    qwen, llama = (train_tiny_tokenizer(f, DEFAULT_CORPUS) for f in ("qwen", "llama"))
    text = "There are 100 apples and 45 pears."
    assert qwen.tokenize(text) != llama.tokenize(text)
    assert all(len(t) == 1 for t in qwen.tokenize("12345 100"))  # Qwen2 splits every digit
    # Llama 3 prepends <|begin_of_text|> when encoding; Qwen2 adds nothing.
    assert llama("x").input_ids == [llama.bos_token_id, *llama.convert_tokens_to_ids(llama.tokenize("x"))]
    assert qwen("x").input_ids == qwen.convert_tokens_to_ids(qwen.tokenize("x"))


def test_chat_template_keeps_thought_and_masks_content_plus_eos(tiny_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    eos = tok.eos_token
    text = tok.apply_chat_template(CHAT, tokenize=False)
    assert ANSWER + eos in text
    prompt = tok.apply_chat_template(CHAT[:1], tokenize=False, add_generation_prompt=True)
    assert text.startswith(prompt) and text[len(prompt):].startswith(ANSWER)  # the prompt ends where content begins
    spans, last = masked_text(tok, CHAT)
    assert spans == [ANSWER + eos] and last == [tok.eos_token_id]
    # Multi-turn: every assistant turn keeps its thought and is trained, through its end-of-turn token.
    second = "<think>\nagain\n</think>\n\n5"
    chat2 = CHAT + [{"role": "user", "content": "And 2 + 3?"}, {"role": "assistant", "content": second}]
    spans, last = masked_text(tok, chat2)
    assert spans == [ANSWER + eos, second + eos] and last == [tok.eos_token_id]


def test_trl_sees_stop_token_trained(tiny_qwen_dir: Path, tiny_llama_dir: Path) -> None:
    from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

    for d in (tiny_qwen_dir, tiny_llama_dir):
        tok = AutoTokenizer.from_pretrained(d)
        assert has_generation_markers(tok.chat_template) and is_chat_template_stop_token_trained(tok)


@pytest.mark.parametrize("ours,upstream,eos", [
    ("qwen2_5.jinja", "qwen2_5.jinja", "<|im_end|>"),
    ("llama3.jinja", None, "<|eot_id|>"),  # Llama 3.1/3.2 layout (TRL ships 3.0): tests/unit/test_shipped_configs.py
    ("gemma2.jinja", "gemma.jinja", "<end_of_turn>"),
    ("smollm2.jinja", None, "<|im_end|>"),
])
def test_templates_render_like_upstream(ours: str, upstream: str | None, eos: str) -> None:
    """Same text as the model's own template (so training and serving prompts agree), generation = content + eos."""
    chat = CHAT + [{"role": "user", "content": "Again?"}, {"role": "assistant", "content": "<think>\nb\n</think>\n\n5"}]
    kw = {"bos_token": "<bos>", "add_generation_prompt": False}
    (text,), (spans,) = render_jinja_template([chat], chat_template=template_text(ours),
                                              return_assistant_tokens_mask=True, **kw)
    assert [text[a:b] for a, b in spans] == [ANSWER + eos, "<think>\nb\n</think>\n\n5" + eos]
    if upstream is not None:
        (ref,), _ = render_jinja_template([chat], chat_template=(TRL_TEMPLATES / upstream).read_text(), **kw)
        assert text == ref
    (gen,), _ = render_jinja_template([chat[:1]], chat_template=template_text(ours), bos_token="<bos>",
                                      add_generation_prompt=True)
    assert text.startswith(gen)


def test_real_qwen2_tokenizer_renders_and_builds(tmp_path: Path) -> None:
    tok = real_qwen2_tokenizer()
    assert len(tok) > 150_000 and tok.eos_token == "<|im_end|>"
    assert tok.apply_chat_template(CHAT, tokenize=False).endswith("<|im_start|>assistant\n" + ANSWER + "<|im_end|>\n")
    spans, last = masked_text(tok, CHAT)
    assert spans == [ANSWER + "<|im_end|>"] and last == [tok.eos_token_id]
    assert len(real_qwen2_tokenizer(think_tokens=True)("<think>", add_special_tokens=False).input_ids) == 1
    d = build_tiny_model("qwen", tmp_path / "real", tokenizer=tok, num_layers=1)
    reloaded = AutoTokenizer.from_pretrained(d)
    assert reloaded(SAMPLE).input_ids == tok(SAMPLE).input_ids
    assert AutoModelForCausalLM.from_pretrained(d).config.vocab_size == len(tok)
    with pytest.raises(ValueError, match="lacks this family's tokens"):
        build_tiny_model("llama", tmp_path / "bad", tokenizer=tok)


def test_a_tiny_student_with_the_synthetic_corpus_is_built_through_the_model_code(tmp_path: Path) -> None:
    """`student.tiny.corpus: synthetic` (the demo students) is resolved by `train.models.tiny_model_dir`, not by
    the builder: the tokenizer it trains spends fewer tokens on a synthetic trace than the default corpus's."""
    from dlcot.data.synthetic import synthetic_traces
    from dlcot.train.models import tiny_model_dir

    shape = {"vocab_size": 512, "hidden_size": 32, "num_layers": 1, "intermediate_size": 64}
    demo = AutoTokenizer.from_pretrained(tiny_model_dir("qwen", tmp_path, corpus="synthetic", **shape))
    plain = AutoTokenizer.from_pretrained(tiny_model_dir("qwen", tmp_path, **shape))
    trace = next(synthetic_traces(1, 5))  # seed 5: not among the corpus's (seed 0) traces
    assert len(demo(trace.reasoning).input_ids) < 0.7 * len(plain(trace.reasoning).input_ids)
    with pytest.raises(ValueError, match="list of texts"):
        build_tiny_model("qwen", tmp_path / "bad", corpus="synthetic")
