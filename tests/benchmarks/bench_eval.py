"""Batched generation vs one problem at a time with the hf engine on a tiny student on CPU.

Prints problems/s for batch 1 and batch 8 (same 16 GSM8K prompts, greedy, 128 new tokens,
one torch thread, best of 3 runs) and their ratio
(target >= 3x). Run: .venv/bin/python tests/benchmarks/bench_eval.py
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "problems" / "gsm8k" / "test.jsonl"
N_PROBLEMS, MAX_NEW = 16, 128  # decode-dominated, like real evals (prefill of padded batches gains little)


def problems_per_s(engine, prompts, repeats: int = 3) -> tuple[float, list[str]]:
    """Best of `repeats` timed runs after a warm-up (the machine is shared: the best run is the least disturbed)."""
    engine.generate(prompts[:2], max_new_tokens=4)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = engine.generate(prompts, max_new_tokens=MAX_NEW)
        best = min(best, time.perf_counter() - start)
    return len(prompts) / best, [c[0].text for c in out]


def main() -> int:
    if not DATA.is_file():
        print(f"bench_eval: skipped, {DATA} not found (needs ../shared/data)")
        return 0
    import torch

    from dlcot.engines.hf import HFEngine
    from dlcot.train.tiny import build_tiny_model

    torch.set_num_threads(1)  # both settings on one core: the ratio measures batching, not thread scheduling
    questions = [json.loads(line)["question"] for line in DATA.read_text().splitlines()[:N_PROBLEMS]]
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model("qwen", Path(tmp) / "tiny")
        single, batched = HFEngine(str(model), batch_size=1), HFEngine(str(model), batch_size=8)
        prompts = single.chat(questions)
        rate1, text1 = problems_per_s(single, prompts)
        rate8, text8 = problems_per_s(batched, prompts)
    same = sum(a == b for a, b in zip(text1, text8, strict=True))
    print(f"hf engine, tiny qwen2 on CPU, {N_PROBLEMS} GSM8K prompts x {MAX_NEW} new tokens (greedy):")
    print(f"  one at a time: {rate1:.2f} problems/s")
    print(f"  batch 8:       {rate8:.2f} problems/s")
    print(f"  ratio batch 8 / one at a time: {rate8 / rate1:.2f}x (target >= 3x); "
          f"identical outputs {same}/{N_PROBLEMS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
