"""transformers generation: batches of similar length, prompts prefilled once without a padding mask, exact seeds.

Sampling is done by a logits processor that adds Gumbel noise from one `torch.Generator` per row, on top of
temperature and top-p, and then decodes greedily: argmax(logits/T + Gumbel) is an exact draw from softmax(logits/T)
(the Gumbel-max trick). Each row's randomness therefore depends only on its own (seed, key, sample) — not on the
batch it landed in — which `model.generate(do_sample=True)`, with one global RNG for the whole batch, cannot give.
Temperature 0 is plain greedy decoding, and `n` greedy samples (or identical greedy prompts) are one generation.

Prefill (why a batch is not simply handed to `model.generate`): a left-padded batch needs a 4-D padding mask, which
takes SDPA off its causal fast path (on CPU the masked kernel costs ~3.6x per prefill token at 900 tokens; on GPU
a mask rules out the flash kernel), and the MCTS search sends each node's prompt once per sibling. So every
*distinct* prompt but its last token is run once, right-padded (a causal model never lets a real token see the pads
after it, so no mask is needed and the pads' outputs are dropped), in sub-batches of similar length; its keys and
values are moved to the left-padded layout and repeated for duplicate prompts; `generate` then starts from that cache
and runs only the last prompt token and the new ones, with positions from the attention mask as usual, writing
each new token's keys and values in place into room reserved for them (`_SlabLayer`) instead of concatenating the
whole cache at every step. Models whose cache is not plain full attention (sliding-window, hybrid) take the plain
path.

Prefix cache (`engine.prefix_cache_mib`): the states of every whole 32-token block of a prefilled prompt are kept,
keyed by the exact tokens up to the block's end, and a later prompt that starts with cached blocks runs only its
rest. An MCTS node's prompt is its problem's chat turn plus the path to it, so most of every prompt was seen before;
a judge retry repeats its first prompt. vLLM does the same (automatic prefix caching); without it the hf engine
recomputed the whole ~600-token chat turn for every node.
Prompts of one call are looked up before any of them runs, so the whole blocks that two or more of them share and
the cache lacks (a judge step's instructions before each trace of a chunk) are run once first (`_shared_prefixes`).
"""
from __future__ import annotations

import gc
import inspect
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers.cache_utils import DynamicLayer

from dlcot.engines import cpu_attention
from dlcot.engines.base import Completion, chat_with_template, cut_at_stop, prompt_keys, sample_seed
from dlcot.errors import ModelError

log = logging.getLogger(__name__)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
PREFILL_SLACK = 1.25  # a prefill sub-batch holds at most this many padded tokens per real one
PREFIX_BLOCK = 32  # tokens per cached prefix block


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

    def __init__(self, model_path: str, *, batch_size: int = 8, dtype: str = "auto", device: str | None = None,
                 prefix_cache_mib: int = 1024):
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
        # cached-prefix prefills split at the cache boundary on CPU (cpu_attention.py); elsewhere nothing changes
        self._split_kw = {"split_past": True} if cpu_attention.install(self.model) else {}
        self.batch_size = max(1, batch_size)
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        self.eos_ids = sorted(i for i in eos if i is not None)
        if not self.eos_ids:
            raise ModelError(f"model={model_path}: no eos token in tokenizer or generation_config")
        # the cache keyword: `cache` from transformers 5.24, `past_key_values` before (still accepted, deprecated)
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._prefill_kw = {"logits_to_keep": 1} if "logits_to_keep" in params else {}  # no full-vocab logits
        self.prefixes = _PrefixCache(prefix_cache_mib << 20)
        self._plain = False  # set when the model's cache turns out not to be plain full attention

    def chat(self, texts: Sequence[str], system_prompt: str | None = None) -> list[str]:
        return chat_with_template(self.tokenizer, texts, system_prompt, f"model={self.tokenizer_name}")

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 keys: Sequence[str] | None = None) -> list[list[Completion]]:
        keys = prompt_keys(prompts, keys)
        greedy = temperature <= 0.0
        ids = self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        first = {p: i for i, p in reversed(list(enumerate(prompts)))}
        # greedy: one generation per distinct prompt; sampled: one per (prompt, sample), each with its own seed
        jobs = [(i, j) for i in range(len(prompts)) if not greedy or first[prompts[i]] == i
                for j in range(1 if greedy else n)]
        jobs.sort(key=lambda job: -len(ids[job[0]]))  # similar lengths share a batch: little padding
        out: dict[tuple[int, int], Completion] = {}
        for b in range(0, len(jobs), self.batch_size):
            batch = jobs[b:b + self.batch_size]
            seeds = [sample_seed(seed, keys[i], j) for i, j in batch]
            done = self._generate_batch([ids[i] for i, _ in batch], seeds, max_new_tokens, temperature, top_p,
                                        list(stop))
            out.update(zip(batch, done, strict=True))
        if greedy:
            return [[out[(first[p], 0)]] * n for p in prompts]
        return [[out[(i, j)] for j in range(n)] for i in range(len(prompts))]

    @torch.inference_mode()
    def _generate_batch(self, ids: list[list[int]], seeds: list[int], max_new_tokens: int, temperature: float,
                        top_p: float, stop: list[str]) -> list[Completion]:
        from transformers import GenerationConfig, LogitsProcessorList

        width, pad = max(map(len, ids)), self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        cache = self._prefill(ids)
        if cache is not None:  # decode in place (`_SlabLayer`)
            cache.layers = [_SlabLayer(layer.keys, layer.values, max_new_tokens + 1) for layer in cache.layers]
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=self.eos_ids,
                                  pad_token_id=pad, stop_strings=stop or None)
        procs = LogitsProcessorList()
        if temperature > 0.0:
            procs.append(_RowGumbel(seeds, temperature, top_p, self.device))
        extra = {} if cache is None else {self._cache_kw: cache}
        gen = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config,
                                  logits_processor=procs, tokenizer=self.tokenizer if stop else None, **extra)
        new = gen[:, width:].tolist()
        return [self._completion(x, max_new_tokens, stop) for x in new]

    def _prefill(self, ids: list[list[int]]):
        """A cache of every prompt but its last token in left-padded layout (module docstring), or None when the
        model's cache is not plain full attention or a prompt has a single token."""
        from transformers import DynamicCache

        if self._plain or min(map(len, ids)) < 2:
            return None
        heads = sorted(dict.fromkeys(tuple(x[:-1]) for x in ids), key=len, reverse=True)
        if self.prefixes.max_bytes > 0:  # blocks shared by these prompts: run once, then found in the cache
            shared = [p for p in _shared_prefixes(heads) if p not in self.prefixes.blocks]
            if shared and self._states(shared) is None:
                return None
        states = self._states(heads)
        if states is None:
            return None
        row = {h: u for u, h in enumerate(heads)}
        rows_of = torch.tensor([row[tuple(x[:-1])] for x in ids], device=self.device)
        out = DynamicCache(config=self.model.config)
        for layer, (keys, values) in enumerate(_stack([states[h] for h in heads], len(heads[0]))):
            out.update(keys.index_select(0, rows_of), values.index_select(0, rows_of), layer)
        return out

    def _states(self, heads: list[tuple[int, ...]]) -> dict[tuple[int, ...], list] | None:
        """Per layer (keys, values) of each of `heads` (longest first), from the prefix cache where it holds their
        first blocks and by running the rest, stored back; None when the cache is not plain full attention."""
        from transformers import DynamicCache

        states: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        pad, misses, hits = self.tokenizer.pad_token_id, [], []
        for head in heads:
            n, cached = self.prefixes.lookup(head)
            if n == 0:
                misses.append(head)
            elif n == len(head):
                states[head] = cached
            else:
                hits.append((head, n, cached))
        # rests of similar length share a batch: cached states left-padded, the rests right-padded after them,
        # masked and positioned
        for chunk in _similar_lengths(sorted(hits, key=lambda hit: len(hit[0]) - hit[1], reverse=True),
                                      size=lambda hit: len(hit[0]) - hit[1]):
            past, span = max(n for _, n, _ in chunk), max(len(h) - n for h, n, _ in chunk)
            cache = DynamicCache(config=self.model.config)
            for layer, (keys, values) in enumerate(_stack([c for _, _, c in chunk], past)):
                cache.update(keys, values, layer)
            rows = [list(h[n:]) + [pad] * (span - len(h) + n) for h, n, _ in chunk]
            mask = [[0] * (past - n) + [1] * len(h) + [0] * (span - len(h) + n) for h, n, _ in chunk]
            positions = [list(range(n, n + span)) for _, n, _ in chunk]
            if not self._forward(rows, cache, attention_mask=torch.tensor(mask, device=self.device),
                                 position_ids=torch.tensor(positions, device=self.device), **self._split_kw):
                return None
            for r, (head, n, _) in enumerate(chunk):
                states[head] = [(layer.keys[r:r + 1, :, past - n:past - n + len(head)],
                                 layer.values[r:r + 1, :, past - n:past - n + len(head)]) for layer in cache.layers]
        for chunk in _similar_lengths(misses, size=len):
            cache = DynamicCache(config=self.model.config)
            if not self._forward([list(h) + [pad] * (len(chunk[0]) - len(h)) for h in chunk], cache):
                return None
            for u, head in enumerate(chunk):  # right padding: row u's real states are its first len(head)
                states[head] = [(layer.keys[u:u + 1, :, :len(head)], layer.values[u:u + 1, :, :len(head)])
                                for layer in cache.layers]
        for head in heads:
            self.prefixes.store(head, states[head])
        return states

    def _forward(self, rows: list[list[int]], cache, **inputs) -> bool:
        """Run `rows` (equal length) through the model into `cache`; False when the cache is not plain full
        attention (sliding-window or hybrid layers), whose states the left-padded layout cannot hold."""
        x = torch.tensor(rows, device=self.device)
        self.model(input_ids=x, use_cache=True, **{self._cache_kw: cache}, **inputs, **self._prefill_kw)
        self._plain = not all(type(layer) is DynamicLayer for layer in cache.layers)
        return not self._plain

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
        self.prefixes.clear()
        gc.collect()  # the weights go now, not at the next collection: a trainer or engine may start next
        if torch.cuda.is_available():
            torch.cuda.empty_cache()



def _stack(parts: list[list[tuple[torch.Tensor, torch.Tensor]]], width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values) of shape [rows, heads, width, dim], row r holding parts[r] (per layer
    [1, heads, n_r, dim]) at its end and zeros (masked) before: the left-padded layout."""
    out = []
    for layer, (k0, _) in enumerate(parts[0]):
        keys = k0.new_zeros(len(parts), k0.shape[1], width, k0.shape[3])
        values = torch.zeros_like(keys)
        for r, part in enumerate(parts):
            n = part[layer][0].shape[2]
            keys[r, :, width - n:] = part[layer][0][0]
            values[r, :, width - n:] = part[layer][1][0]
        out.append((keys, values))
    return out


class _SlabLayer(DynamicLayer):
    """A full-attention cache layer whose keys and values are views of buffers with room for the tokens to come:
    a decoding step writes its token in place. `DynamicLayer` concatenates the whole cache at every step, which
    copies O(length) per token and row (on CPU a quarter of a batch-8 decoding step over ~2k cached tokens); this
    is what vLLM's preallocated KV blocks and `StaticCache` avoid, without attending over unused slots."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int):
        super().__init__()
        self.lazy_initialization(keys, values)
        rows, heads, length, dim = keys.shape
        self._keys, self._values = keys.new_empty(rows, heads, length + room, dim), values.new_empty(
            rows, heads, length + room, dim)  # the states, then `room` free slots
        self._keys[:, :, :length], self._values[:, :, :length] = keys, values
        self.keys, self.values = self._keys[:, :, :length], self._values[:, :, :length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        start, end = self.keys.shape[-2], self.keys.shape[-2] + key_states.shape[-2]
        if (end > self._keys.shape[-2] or self.keys.data_ptr() != self._keys.data_ptr()
                or self.keys.shape[0] != self._keys.shape[0]):  # full, or rows reordered by another caller
            rows, heads, _, dim = self.keys.shape
            self._keys, self._values = (self.keys.new_zeros(rows, heads, 2 * end, dim),
                                        self.values.new_zeros(rows, heads, 2 * end, dim))
            self._keys[:, :, :start], self._values[:, :, :start] = self.keys, self.values
        self._keys[:, :, start:end] = key_states
        self._values[:, :, start:end] = value_states
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values


def _similar_lengths(items: list, size=len) -> list[list]:
    """`items` (largest `size` first) cut into prefill sub-batches of at most PREFILL_SLACK padded tokens per real
    one."""
    chunks: list[list] = []
    real = 0
    for item in items:
        if chunks and (len(chunks[-1]) + 1) * size(chunks[-1][0]) <= PREFILL_SLACK * (real + size(item)):
            chunks[-1].append(item)
            real += size(item)
        else:
            chunks.append([item])
            real = size(item)
    return chunks


def _shared_prefixes(heads: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The whole-block prefixes two or more of `heads` start with, longest first: each step of the LLM judge sends
    one instruction text before every trace, and the prompts of one batch are all looked up in the prefix cache
    before any is run, so without this the instructions would be prefilled once per prompt, where one prompt at a
    time pays for them once. Neighbours in sorted order share the longest prefixes."""
    ordered = sorted(heads)
    out = set()
    for a, b in zip(ordered, ordered[1:], strict=False):
        n = 0
        while n + PREFIX_BLOCK <= min(len(a), len(b)) and a[n:n + PREFIX_BLOCK] == b[n:n + PREFIX_BLOCK]:
            n += PREFIX_BLOCK
        if n:
            out.add(a[:n])
    return sorted(out, key=len, reverse=True)


class _PrefixCache:
    """Key and value states of prompt prefixes in blocks of PREFIX_BLOCK tokens, each keyed by all the tokens up to
    its end (exact keys; vLLM's automatic prefix caching hashes the same thing). Causal attention makes a prefix's
    states independent of what follows it, so a block serves every later prompt that starts with its key: an MCTS
    node's prompt is its problem's chat turn plus the path to it, a judge retry is the first prompt plus a note.
    Least recently used blocks go first beyond `max_bytes` (0: off)."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes = max_bytes, 0
        self.blocks: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()

    def clear(self) -> None:
        self.blocks.clear()
        self.bytes = 0

    def lookup(self, ids: tuple[int, ...]) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]:
        """(n, states of ids[:n] per layer) for the longest cached run of whole blocks at the start of `ids`."""
        found = []
        for end in range(PREFIX_BLOCK, len(ids) + 1, PREFIX_BLOCK):
            block = self.blocks.get(ids[:end])
            if block is None:
                break
            self.blocks.move_to_end(ids[:end])
            found.append(block)
        if not found:
            return 0, []
        return len(found) * PREFIX_BLOCK, [(torch.cat([b[layer][0] for b in found], dim=2),
                                            torch.cat([b[layer][1] for b in found], dim=2))
                                           for layer in range(len(found[0]))]

    def store(self, ids: tuple[int, ...], states: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Keep the whole blocks of `ids` (states: per layer [1, heads, len(ids), dim]) not cached yet."""
        for end in range(PREFIX_BLOCK, len(ids) + 1 if self.max_bytes > 0 else 0, PREFIX_BLOCK):
            if ids[:end] in self.blocks:
                continue
            block = [(k[:, :, end - PREFIX_BLOCK:end].clone(), v[:, :, end - PREFIX_BLOCK:end].clone())
                     for k, v in states]
            self.blocks[ids[:end]] = block
            self.bytes += sum(k.nbytes + v.nbytes for k, v in block)
            while self.bytes > self.max_bytes:
                _, old = self.blocks.popitem(last=False)
                self.bytes -= sum(k.nbytes + v.nbytes for k, v in old)
