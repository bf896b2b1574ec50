"""engine=vllm against a stand-in `vllm` module (the real one needs a GPU: tests/gpu/ runs it there).

The stand-in records what dlcot hands vLLM: how prompts are encoded (token ids, one BOS), how many requests go in
one call, the engine's sizes, and what `close()` tears down.
"""
from __future__ import annotations

import json
import sys
import types

import pytest
from real_models import gpt2_bpe_tokenizer

from dlcot.train.models import template_text


class FakeLLM:
    instances: list[FakeLLM] = []

    def __init__(self, model, **kwargs):
        self.model, self.kwargs, self.calls = model, kwargs, []
        self.tokenizer = gpt2_bpe_tokenizer("llama")
        self.tokenizer.chat_template = template_text("llama3.jinja")
        self.shut_down = False
        core = types.SimpleNamespace(shutdown=lambda: setattr(self, "shut_down", True))
        self.llm_engine = types.SimpleNamespace(engine_core=core)
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, inputs, params, use_tqdm=True):
        assert all(isinstance(p, dict) and "prompt_token_ids" in p for p in inputs), "text prompts re-tokenize"
        self.calls.append((inputs, params))
        text = "<think>2 + 2 = 4</think>The answer is \\boxed{4}."
        out = types.SimpleNamespace(text=text, token_ids=[1, 2, 3], finish_reason="stop")
        return [types.SimpleNamespace(outputs=[out]) for _ in inputs]


@pytest.fixture
def fake_vllm(monkeypatch):
    cleaned: list[bool] = []
    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    dist = types.ModuleType("vllm.distributed")
    dist.cleanup_dist_env_and_memory = lambda: cleaned.append(True)
    vllm.distributed = dist
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.distributed", dist)
    FakeLLM.instances.clear()
    return cleaned


def test_prompts_go_as_token_ids_with_one_bos(fake_vllm):
    from dlcot.engines.vllm import VLLMEngine

    engine = VLLMEngine("m", seed=3)
    prompts = engine.chat(["What is 2 + 2?", "And 3 + 3?"])
    assert all(p.startswith("<|begin_of_text|>") for p in prompts)  # the template writes the BOS
    outs = engine.generate(prompts, n=2, temperature=0.7, keys=["a", "b"])
    (inputs, params), = FakeLLM.instances[0].calls
    tok = engine.tokenizer
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert len(inputs) == 4 and [p["prompt_token_ids"].count(bos) for p in inputs] == [1, 1, 1, 1]
    assert inputs[0]["prompt_token_ids"] == tok(prompts[0], add_special_tokens=False)["input_ids"]
    assert tok.decode(inputs[2]["prompt_token_ids"]) == prompts[1]
    assert len({p.seed for p in params}) == 4  # every sample its own seed
    assert [len(o) for o in outs] == [2, 2] and outs[0][0].text.endswith("\\boxed{4}.")


def test_close_shuts_the_engine_down_and_frees_the_distributed_state(fake_vllm):
    from dlcot.engines.vllm import VLLMEngine

    engine = VLLMEngine("m")
    llm = FakeLLM.instances[0]
    engine.close()
    assert llm.shut_down and fake_vllm == [True] and engine.llm is None
    engine.close()  # twice is harmless
    assert fake_vllm == [True]
    with pytest.raises(RuntimeError, match="after close"):
        engine.generate(["x"])


def test_generate_hands_vllm_the_whole_chunk_with_the_teachers_sizes(fake_vllm, tmp_path):
    """10 problems x n=2 are one vLLM call (not batches of engine.batch_size), and QwQ-32B starts at TP=2 with
    a context that leaves room for a KV cache."""
    from dlcot.commands import run_command

    probs = tmp_path / "p.jsonl"
    probs.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i}?", "answer": "4"}) + "\n"
                             for i in range(10)))
    out = run_command("generate", ["teacher=qwq_32b", "teacher.n=2", "engine=vllm", f"input={probs}",
                                   f"output={tmp_path / 'out'}"])
    (llm,) = FakeLLM.instances
    assert len(llm.calls) == 1 and len(llm.calls[0][0]) == 20
    assert llm.kwargs["tensor_parallel_size"] == 2 and llm.kwargs["max_model_len"] == 20480
    assert llm.shut_down and fake_vllm == [True]  # the stage released the GPU before returning
    assert len((out / "traces.jsonl").read_text().splitlines()) == 20
