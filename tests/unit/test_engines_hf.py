"""The transformers engine on tiny real students: batching does not change outputs, per-sample seeds, stop
strings, truncation, and clear errors for model directories without a tokenizer or chat template."""
from __future__ import annotations

import shutil

import pytest

from dlcot.engines.hf import HFEngine
from dlcot.errors import ModelError

PROBLEMS = ["What is 2 + 2?", "Tom has 3 apples and buys 5 more. How many apples does he have now?",
            "Compute 45 / 9 - 1.", "x"]


@pytest.fixture(scope="module")
def engine(tiny_qwen_dir):
    return HFEngine(str(tiny_qwen_dir), batch_size=4)


def test_chat_uses_the_model_template(engine):
    (prompt,) = engine.chat(["What is 2 + 2?"], system_prompt="Be brief.")
    assert "<|im_start|>user\nWhat is 2 + 2?<|im_end|>" in prompt and prompt.rstrip().endswith("assistant")
    assert "Be brief." in prompt


def test_batched_greedy_equals_one_at_a_time(engine):
    prompts = engine.chat(PROBLEMS)
    batched = engine.generate(prompts, max_new_tokens=12)
    single = [engine.generate([p], max_new_tokens=12)[0] for p in prompts]
    assert [c[0].text for c in batched] == [c[0].text for c in single]
    for (c,) in batched:
        assert c.finish_reason in ("stop", "length") and 0 <= c.n_tokens <= 12
        assert (c.finish_reason == "length") == (c.n_tokens == 12)


def test_sampling_seeds_are_per_sample_not_per_batch(engine):
    prompts = engine.chat(PROBLEMS)
    keys = [f"k{i}" for i in range(len(prompts))]
    kw = dict(n=3, max_new_tokens=10, temperature=1.0, top_p=0.95, seed=7)
    batched = engine.generate(prompts, keys=keys, **kw)
    alone = engine.generate(prompts[1:2], keys=keys[1:2], **kw)
    assert [c.text for c in batched[1]] == [c.text for c in alone[0]]
    assert len({c.text for cs in batched for c in cs}) > 3  # samples differ from each other
    other_seed = engine.generate(prompts, keys=keys, **{**kw, "seed": 8})
    assert [c.text for c in other_seed[1]] != [c.text for c in batched[1]]


def test_greedy_n_repeats_one_generation(engine):
    (cs,) = engine.generate(engine.chat(PROBLEMS[:1]), n=3, max_new_tokens=8)
    assert len(cs) == 3 and len({c.text for c in cs}) == 1


def test_stop_strings_cut_the_text_and_recount(engine):
    prompts = engine.chat(PROBLEMS)
    kw = dict(max_new_tokens=24, temperature=1.0, seed=3, keys=["a", "b", "c", "d"])
    free = [c for (c,) in engine.generate(prompts, **kw)]
    i, text = next((i, c.text) for i, c in enumerate(free) if len(c.text.strip()) > 12)
    stop = text.strip()[6:9]
    cut = [c for (c,) in engine.generate(prompts, stop=[stop], **kw)]
    assert cut[i].text == text[:text.index(stop)] and cut[i].finish_reason == "stop"
    assert cut[i].n_tokens == len(engine.tokenizer(cut[i].text, add_special_tokens=False)["input_ids"])
    assert all(stop not in c.text for c in cut)


def test_model_dir_without_tokenizer_is_a_clear_error(tiny_qwen_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in tiny_qwen_dir.iterdir():
        if f.name in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, bare / f.name)
    with pytest.raises(ModelError, match="tokenizer"):
        HFEngine(str(bare))


def test_model_without_chat_template_is_a_clear_error(tiny_llama_dir, tmp_path):
    copy = tmp_path / "notemplate"
    shutil.copytree(tiny_llama_dir, copy)
    (copy / "chat_template.jinja").unlink(missing_ok=True)
    eng = HFEngine(str(copy))
    if eng.tokenizer.chat_template:  # template stored in tokenizer_config.json instead
        pytest.skip("tokenizer keeps its template elsewhere")
    with pytest.raises(ModelError, match="no chat template.*eval.chat=false"):
        eng.chat(["hi"])


def test_prefill_once_per_distinct_prompt_equals_plain_generate(engine, monkeypatch):
    """The engine prefills each distinct prompt once, unpadded, and starts `generate` from that cache: the tokens
    are those of plain left-padded `model.generate` (greedy and sampled), and the prefill really ran."""
    prompts = engine.chat([*PROBLEMS, PROBLEMS[1]])  # a duplicate, as MCTS siblings of one expansion send
    kw = dict(max_new_tokens=8, temperature=0.8, top_p=0.9, seed=5, keys=[f"k{i}" for i in range(5)])
    monkeypatch.setattr(engine, "batch_size", 8)
    prefilled: list[int] = []
    real_prefill = engine._prefill
    monkeypatch.setattr(engine, "_prefill", lambda ids: prefilled.append(len(ids)) or real_prefill(ids))
    fast = [engine.generate(prompts, **kw), engine.generate(prompts, max_new_tokens=8)]
    assert prefilled == [5, 4]  # greedy: the duplicate prompt is generated once
    monkeypatch.setattr(engine, "_prefill", lambda ids: None)
    plain = [engine.generate(prompts, **kw), engine.generate(prompts, max_new_tokens=8)]
    for a, b in zip(fast, plain, strict=True):
        assert [(c.text, c.n_tokens, c.finish_reason) for (c,) in a] == [(c.text, c.n_tokens, c.finish_reason)
                                                                          for (c,) in b]
    assert fast[1][1][0] is fast[1][4][0] and fast[0][1][0].text != fast[0][4][0].text  # other key, other sample


def test_cached_prompt_prefixes_change_nothing_and_are_reused(tiny_qwen_dir):
    """A prompt that starts with blocks prefilled before (a retry: the first prompt plus a note) runs only its rest
    on the cached states: its tokens are those of an engine with the cache off, and the cache stays in budget."""
    cached, plain = HFEngine(str(tiny_qwen_dir), batch_size=8), HFEngine(str(tiny_qwen_dir), prefix_cache_mib=0)
    first = cached.chat([p * 6 for p in PROBLEMS])
    retry = [p + " Your answer was rejected; answer again." for p in first]
    kw = dict(max_new_tokens=10, temperature=0.9, seed=2, keys=list("abcd"))
    for prompts in (first, retry, first):
        assert [c.text for (c,) in cached.generate(prompts, **kw)] == [c.text for (c,) in plain.generate(prompts, **kw)]
    assert cached.prefixes.blocks and not plain.prefixes.blocks
    n, _ = cached.prefixes.lookup(tuple(cached.tokenizer(retry[1], add_special_tokens=False)["input_ids"]))
    assert n >= len(cached.tokenizer(first[1], add_special_tokens=False)["input_ids"]) - 32
    small = HFEngine(str(tiny_qwen_dir))
    small.prefixes.max_bytes = 3 * next(iter(cached.prefixes.blocks.values()))[0][0].nbytes * 4  # 3 blocks of 2 layers
    small.generate(first, max_new_tokens=2)
    assert 0 < small.prefixes.bytes <= small.prefixes.max_bytes


def test_slab_layer_decodes_in_place_like_concatenation():
    """The in-place decoding cache returns what `DynamicLayer`'s concatenation returns, writes into one buffer
    while it has room, and still works once full or after its rows were reordered."""
    import torch
    from transformers.cache_utils import DynamicLayer

    from dlcot.engines.hf import _SlabLayer

    start = torch.randn(3, 2, 5, 4)
    slab, plain = _SlabLayer(start, start + 1, room=2), DynamicLayer()
    plain.update(start, start + 1)
    buffer = slab._keys.data_ptr()
    for step in range(4):  # two steps in place, then past the room
        new = torch.randn(3, 2, 1, 4)
        got, want = slab.update(new, new * 2), plain.update(new, new * 2)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
        assert (slab._keys.data_ptr() == buffer) == (step < 2)
    slab.reorder_cache(torch.tensor([2, 0, 1]))
    plain.reorder_cache(torch.tensor([2, 0, 1]))
    new = torch.randn(3, 2, 1, 4)
    assert all(torch.equal(a, b) for a, b in zip(slab.update(new, new), plain.update(new, new), strict=True))


def test_cpu_split_prefill_equals_the_masked_one(tiny_qwen_dir, monkeypatch):
    """A cached-prefix prefill on CPU (rows with cached parts of different lengths, left-padded) computed in two
    unmasked-causal kernel calls gives the masked kernel's logits, and really takes the split path."""
    import torch
    from transformers import DynamicCache

    from dlcot.engines import cpu_attention

    engine = HFEngine(str(tiny_qwen_dir))
    model = engine.model
    assert engine._split_kw and model.config._attn_implementation == cpu_attention.NAME
    ids = torch.randint(3, 200, (3, 60), generator=torch.Generator().manual_seed(0))
    past_mask = torch.ones(3, 40, dtype=torch.long)
    past_mask[1, :10] = 0  # row 1 has 30 cached tokens, left-padded
    positions = torch.stack([torch.arange(40, 60), torch.arange(30, 50), torch.arange(40, 60)])
    delegated = []
    real = cpu_attention.sdpa_attention_forward
    monkeypatch.setattr(cpu_attention, "sdpa_attention_forward", lambda *a, **k: delegated.append(1) or real(*a, **k))

    def logits(**split):
        cache = DynamicCache(config=model.config)
        model(input_ids=ids[:, :40], attention_mask=past_mask, cache=cache)
        delegated.clear()
        mask = torch.cat([past_mask, torch.ones(3, 20, dtype=torch.long)], 1)
        out = model(input_ids=ids[:, 40:], attention_mask=mask, position_ids=positions, cache=cache, **split).logits
        return out, len(delegated)

    (masked, n_masked), (split, n_split) = logits(), logits(split_past=True)
    assert n_masked > 0 and n_split == 0
    torch.testing.assert_close(split, masked, rtol=1e-4, atol=1e-5)
    assert not torch.equal(split[0], split[1])  # rows differ: the comparison is not trivially true


def test_a_prefix_shared_within_one_batch_is_prefilled_once(tiny_qwen_dir, monkeypatch):
    """Prompts of one call that open with the same instructions (a judge step over a chunk of traces) run those
    blocks once, not once per prompt, and then only their own rests: the tokens are those of an engine with the
    prefix cache off, greedy and sampled."""
    instructions = "Split the reasoning into parts and quote the first words of each part exactly. " * 6
    prompts = [instructions + f"Reasoning {k}: " + "so x = 2, then y = 3; " * (2 + 3 * k) for k in range(5)]
    cached, plain = HFEngine(str(tiny_qwen_dir), batch_size=8), HFEngine(str(tiny_qwen_dir), prefix_cache_mib=0)
    calls: list[list[list[int]]] = []
    real = cached._forward
    monkeypatch.setattr(cached, "_forward", lambda rows, cache, **kw: calls[-1].append([len(r) for r in rows])
                        or real(rows, cache, **kw))
    for k in (dict(max_new_tokens=6, temperature=0.7, seed=1, keys=list("abcde")), dict(max_new_tokens=6)):
        calls.append([])
        assert [c.text for (c,) in cached.generate(prompts, **k)] == [c.text for (c,) in plain.generate(prompts, **k)]
    shared = len(cached.tokenizer(instructions, add_special_tokens=False)["input_ids"]) // 32 * 32
    first, second = calls
    assert len(first[0]) == 1 and first[0][0] >= shared  # the common blocks, one row
    assert sum(map(len, first[1:])) == len(prompts) and max(max(r) for r in first[1:]) < first[0][0]  # the rests
    assert max(max(r) for r in second) < 32  # the second call finds every prompt's whole blocks cached

