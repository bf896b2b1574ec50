"""transformers generation: left-padded batches of similar length, exact per-sample seeds.

Sampling is done by a logits processor that adds Gumbel noise from one `torch.Generator` per row, on top of
temperature and top-p, and then decodes greedily: argmax(logits/T + Gumbel) is an exact draw from softmax(logits/T)
(the Gumbel-max trick). Each row's randomness therefore depends only on its own (seed, key, sample) — not on the
batch it landed in — which `model.generate(do_sample=True)`, with one global RNG for the whole batch, cannot give.
Temperature 0 is plain greedy decoding, and `n` greedy samples are one generation repeated.
"""
from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from dlcot.engines.base import Completion, chat_with_template, cut_at_stop, prompt_keys, sample_seed
from dlcot.errors import ModelError

log = logging.getLogger(__name__)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


class _RowGumbel:
    """Logits processor: temperature, top-p, then Gumbel noise from a per-row generator."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, device: torch.device):
        from transformers import TopPLogitsWarper

        self.temperature = temperature
        self.top_p = TopPLogitsWarper(top_p) if top_p < 1.0 else None
        self.gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.device = device

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float() / self.temperature
        if self.top_p is not None:
            scores = self.top_p(input_ids, scores)
        u = torch.stack([torch.rand(scores.shape[-1], generator=g, device=self.device) for g in self.gens])
        return scores - torch.log(-torch.log(u.clamp_min(1e-20)))


class HFEngine:
    """`model.generate` on a local directory or Hub model (tokenizer and chat template from the same path)."""

    name = "hf"

    def __init__(self, model_path: str, *, batch_size: int = 8, dtype: str = "auto", device: str | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer_name = str(model_path)
        local = Path(model_path)
        if local.is_dir() and not any((local / f).exists() for f in TOKENIZER_FILES):
            # transformers 5 builds an empty tokenizer for such a directory instead of failing
            raise ModelError(f"model={model_path}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the "
                             "tokenizer next to the weights (tokenizer.save_pretrained)")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        except (OSError, ValueError) as err:
            raise ModelError(f"model={model_path}: no tokenizer could be loaded ({err}); save the tokenizer next to "
                             "the weights (tokenizer.save_pretrained)") from err
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        try:
            self.model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch_dtype).to(self.device)
        except OSError as err:
            raise ModelError(f"model={model_path}: weights could not be loaded ({err})") from err
        self.model.eval()
        self.batch_size = max(1, batch_size)
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        self.eos_ids = sorted(i for i in eos if i is not None)
        if not self.eos_ids:
            raise ModelError(f"model={model_path}: no eos token in tokenizer or generation_config")

    def chat(self, texts: Sequence[str], system_prompt: str | None = None) -> list[str]:
        return chat_with_template(self.tokenizer, texts, system_prompt, f"model={self.tokenizer_name}")

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 keys: Sequence[str] | None = None) -> list[list[Completion]]:
        keys = prompt_keys(prompts, keys)
        greedy = temperature <= 0.0
        jobs = [(i, j) for i in range(len(prompts)) for j in range(1 if greedy else n)]
        lengths = [len(ids) for ids in self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
        jobs.sort(key=lambda job: -lengths[job[0]])  # similar lengths share a batch: little padding
        out: dict[tuple[int, int], Completion] = {}
        for b in range(0, len(jobs), self.batch_size):
            batch = jobs[b:b + self.batch_size]
            seeds = [sample_seed(seed, keys[i], j) for i, j in batch]
            done = self._generate_batch([prompts[i] for i, _ in batch], seeds, max_new_tokens, temperature, top_p,
                                        list(stop))
            out.update(zip(batch, done, strict=True))
        return [[out[(i, 0 if greedy else j)] for j in range(n)] for i in range(len(prompts))]

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[str], seeds: list[int], max_new_tokens: int, temperature: float,
                        top_p: float, stop: list[str]) -> list[Completion]:
        from transformers import GenerationConfig, LogitsProcessorList

        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=self.eos_ids,
                                  pad_token_id=self.tokenizer.pad_token_id, stop_strings=stop or None)
        procs = LogitsProcessorList()
        if temperature > 0.0:
            procs.append(_RowGumbel(seeds, temperature, top_p, self.device))
        gen = self.model.generate(**enc, generation_config=config, logits_processor=procs,
                                  tokenizer=self.tokenizer if stop else None)
        new = gen[:, enc["input_ids"].shape[1]:].tolist()
        return [self._completion(ids, max_new_tokens, stop) for ids in new]

    def _completion(self, ids: list[int], max_new_tokens: int, stop: list[str]) -> Completion:
        end = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
        body = ids if end is None else ids[:end]
        text, hit = cut_at_stop(self.tokenizer.decode(body, skip_special_tokens=True), stop)
        if hit:
            n_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            return Completion(text, n_tokens, "stop")
        reason = "length" if end is None and len(ids) >= max_new_tokens else "stop"
        return Completion(text, len(body), reason)

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        gc.collect()  # the weights go now, not at the next collection: a trainer or engine may start next
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

