"""The LLM-judged enhance backend: judge calls and tokens per trace, and chunked batches vs one trace at a time.

Judge model: a randomly initialised Qwen2-architecture model from `dlcot.train.tiny.build_tiny_model("qwen")` (2 layers,
hidden 64, 4 query / 2 key-value heads, RoPE up to 16k positions, tied embeddings, a 494-token byte-level BPE
tokenizer with Qwen's pre-tokenizer and the Qwen2.5 chat template) through the hf engine on CPU, one torch thread: a
stand-in for the call pattern (~1.5k-token prompts, 128-token answers), not for a real judge's speed, which this
2-core machine could not run on 96 such prompts in minutes. Its answers are garbage: each step is asked twice (the
retry) and falls back, which is the most calls a trace can cost. The same N_TRACES synthetic traces go through
`JudgedBackend.prepare` (backend=llm: segment, label, cluster)
1. one trace at a time: chunk 1, engine batch 1;
2. batched: one chunk of N_TRACES, engine batch 8 (each step one `generate` call over the chunk),
with no answer cache, greedy, MAX_NEW new tokens, each timed run starting with an empty prompt-prefix cache. The two
settings alternate for `--rounds` rounds (default 2) and the ratio is taken between the fastest run of each, so a
burst of load from other jobs on a shared machine skews it less; every round's own ratio is printed too. Prints
wall and CPU time, their ratios (target >= 3x), whether every judge answer came out the same, and the judge's
calls, prompt and completion tokens per trace (identical in both settings).
Run: .venv/bin/python tests/benchmarks/bench_judge.py [--rounds N]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

N_TRACES, MAX_NEW = 16, 128  # a judge answer (JSON with quotes) is ~100-500 tokens


def run(model: Path, traces, chunk: int, batch: int) -> tuple[float, float, list, list]:
    from dlcot.answers import AnswerChecker
    from dlcot.engines.hf import HFEngine
    from dlcot.enhance.judge import Judge, load_prompts
    from dlcot.enhance.label import OfflineBackend
    from dlcot.enhance.llm import JudgedBackend

    engine = HFEngine(str(model), batch_size=batch)
    with AnswerChecker() as checker:
        judge = Judge(engine, model_id="tiny", prompts=load_prompts(None), cache_dir=None, max_new_tokens=MAX_NEW)
        backend = JudgedBackend("llm", judge, OfflineBackend(checker), max_chars=100_000, gate=False)
        backend.prepare(traces[:1])  # warm-up: imports, math-verify, first forward pass
        engine.prefixes.clear()  # the timed run starts with no prompt prefix cached
        usages = []
        wall, cpu = time.perf_counter(), time.process_time()
        for k in range(0, len(traces), chunk):
            backend.prepare(traces[k:k + chunk])
            usages.extend(backend._done[t.id].usage for t in traces[k:k + chunk])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return wall, cpu, usages, {k: e["answer"] for k, e in judge._cache.items()}  # every judge answer


def main() -> int:
    import torch

    from dlcot.data.synthetic import synthetic_traces
    from dlcot.records import Trace
    from dlcot.train.tiny import build_tiny_model

    torch.set_num_threads(1)  # both settings on one core: the ratio measures batching, not thread scheduling
    traces = [Trace(t.id, t.problem, t.reasoning, t.gold_answer) for t in synthetic_traces(N_TRACES, seed=3)]
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 2
    singles, batches = [], []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model("qwen", Path(tmp) / "tiny", max_position_embeddings=16384)
        for _ in range(rounds):
            singles.append(run(model, traces, chunk=1, batch=1))
            batches.append(run(model, traces, chunk=N_TRACES, batch=8))
    _, _, u1, r1 = singles[0]
    _, _, u8, r8 = batches[0]
    single, batched = min(r[0] for r in singles), min(r[0] for r in batches)
    single_cpu, batched_cpu = min(r[1] for r in singles), min(r[1] for r in batches)
    per_round = ", ".join(f"{a[0] / b[0]:.2f}x" for a, b in zip(singles, batches, strict=True))
    if any(r[3] != r1 for r in singles) or any(r[3] != r8 for r in batches):
        raise SystemExit("a round's judge answers differ from the first round's of the same setting")
    assert [u.calls for u in u1] == [u.calls for u in u8]
    same = sum(r1.get(k) == answer for k, answer in r8.items())
    n = len(u8)
    calls = sum(u.calls for u in u8) / n
    prompt = sum(u.prompt_tokens for u in u8) / n
    completion = sum(u.completion_tokens for u in u8) / n
    fallbacks = sum(len(u.fallbacks) for u in u8)
    print(f"judge = tiny random qwen2 through the hf engine on CPU, backend=llm, {n} synthetic traces, "
          f"{MAX_NEW} new tokens, greedy:")
    print(f"  per trace: {calls:.1f} judge calls, {prompt:.0f} prompt tokens, {completion:.0f} completion tokens "
          f"({fallbacks} step fallbacks in all: a random model's answers never validate)")
    print(f"  fastest of {rounds} alternating rounds: one trace at a time {single:.2f} s; chunk of {n}, engine batch "
          f"8: {batched:.2f} s; ratio {single / batched:.2f}x (target >= 3x); per round {per_round}; in CPU time "
          f"{single_cpu / batched_cpu:.2f}x ({single_cpu:.2f} s vs {batched_cpu:.2f} s); identical judge answers "
          f"{same}/{len(r8)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
