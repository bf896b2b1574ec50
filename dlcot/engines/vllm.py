"""vLLM offline inference (GPU; `pip install 'dlcot[vllm]'`): continuous batching over all prompts at once.

Each (prompt, sample) is its own request with its own seed (`SamplingParams(seed=...)`), so samples do not
depend on which other prompts share the run. Token counts are the generated token ids vLLM returns.
Not exercised by the CPU test suite (vLLM needs a GPU).
"""
from __future__ import annotations

from collections.abc import Sequence

from dlcot.engines.base import Completion, chat_with_template, cut_at_stop, prompt_keys, sample_seed
from dlcot.errors import ConfigError


class VLLMEngine:
    name = "vllm"

    def __init__(self, model_path: str, *, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 dtype: str = "auto", max_model_len: int | None = None, seed: int = 0):
        try:
            from vllm import LLM
        except ImportError as err:
            raise ConfigError("engine=vllm needs vLLM (pip install 'dlcot[vllm]', CUDA GPU); use engine=hf "
                              "otherwise") from err
        self.tokenizer_name = str(model_path)
        self.llm = LLM(model=str(model_path), tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                       gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, seed=seed)
        self.tokenizer = self.llm.get_tokenizer()

    def chat(self, texts: Sequence[str], system_prompt: str | None = None) -> list[str]:
        return chat_with_template(self.tokenizer, texts, system_prompt, f"model={self.tokenizer_name}")

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 keys: Sequence[str] | None = None) -> list[list[Completion]]:
        from vllm import SamplingParams

        keys = prompt_keys(prompts, keys)
        reqs = [(p, SamplingParams(n=1, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                   max_tokens=max_new_tokens, stop=list(stop) or None,
                                   seed=sample_seed(seed, k, j) % 2**31))
                for p, k in zip(prompts, keys, strict=True) for j in range(n)]
        outs = self.llm.generate([p for p, _ in reqs], [s for _, s in reqs], use_tqdm=True)
        done = []
        for out in outs:
            o = out.outputs[0]
            text, _ = cut_at_stop(o.text, stop)
            done.append(Completion(text, len(o.token_ids), "length" if o.finish_reason == "length" else "stop"))
        return [done[i * n:(i + 1) * n] for i in range(len(prompts))]

    def close(self) -> None:
        self.llm = None
