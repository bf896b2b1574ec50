"""vLLM offline inference (GPU; `pip install 'dlcot[vllm]'`): continuous batching over all prompts at once.

- Prompts reach vLLM as token ids (`{"prompt_token_ids": ...}`), tokenized with `add_special_tokens=False`:
  `chat()` has already rendered the chat template, which writes the BOS itself for Llama 3 and Gemma 2. A text
  prompt would be tokenized again with special tokens on, and those models would see two BOS tokens; the hf
  engine and training tokenize the same way as here, so the three agree token for token.
- Each (prompt, sample) is its own request with its own seed (`SamplingParams(seed=...)`), so samples do not
  depend on which other prompts share the run. Callers hand over whole chunks (`engine.chunk_size`): vLLM
  schedules them itself, a batch size of ours would only serialise its scheduler.
- `close()` frees the GPU for the next stage in the same process (eval_raw → eval_enhanced, mcts → training):
  it shuts the engine core down, destroys the distributed state vLLM created and empties the CUDA cache.
Run on a GPU by `make gpu-check`; on CPU the suite checks it against a stand-in `vllm` module.
"""
from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Sequence

from dlcot.engines.base import Completion, chat_with_template, cut_at_stop, prompt_keys, sample_seed
from dlcot.errors import ConfigError

log = logging.getLogger(__name__)


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

        if self.llm is None:
            raise RuntimeError("VLLMEngine.generate after close()")
        keys = prompt_keys(prompts, keys)
        ids = self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        inputs, params = [], []
        for token_ids, key in zip(ids, keys, strict=True):
            for j in range(n):
                inputs.append({"prompt_token_ids": list(token_ids)})
                params.append(SamplingParams(n=1, temperature=temperature,
                                             top_p=top_p if temperature > 0 else 1.0, max_tokens=max_new_tokens,
                                             stop=list(stop) or None, seed=sample_seed(seed, key, j) % 2**31))
        outs = self.llm.generate(inputs, params, use_tqdm=True)
        done = []
        for out in outs:
            o = out.outputs[0]
            text, _ = cut_at_stop(o.text, stop)
            done.append(Completion(text, len(o.token_ids), "length" if o.finish_reason == "length" else "stop"))
        return [done[i * n:(i + 1) * n] for i in range(len(prompts))]

    def close(self) -> None:
        """Release the GPU memory this engine holds, so another engine or a trainer can start in this process."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        shutdown = getattr(core, "shutdown", None)  # V1: stops the engine-core process that holds the weights
        if callable(shutdown):
            shutdown()
        del llm, engine, core, shutdown
        import torch

        try:
            from vllm.distributed import cleanup_dist_env_and_memory
        except ImportError:  # older releases: the steps it performs
            from vllm.distributed import destroy_distributed_environment, destroy_model_parallel

            destroy_model_parallel()
            destroy_distributed_environment()
            with contextlib.suppress(AssertionError, RuntimeError, ValueError):
                torch.distributed.destroy_process_group()
        else:
            cleanup_dist_env_and_memory()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            log.info("vllm engine closed: %.2f GiB of GPU memory still allocated by this process",
                     torch.cuda.memory_allocated() / 2**30)
