"""MCTS with trees in lockstep (one engine batch per step for all of them) vs one tree at a time, and rollouts per
engine call for both reward modes.

Model: a randomly initialised Qwen2-architecture model from `dlcot.train.tiny.build_tiny_model("qwen")` (2 layers,
hidden 64, 4 query / 2 key-value heads, RoPE, tied embeddings, a 494-token byte-level BPE tokenizer with Qwen's
pre-tokenizer and the Qwen2.5 chat template), through the hf engine on CPU with one torch thread. It is a stand-in
for the *call pattern*, not for a real writer's speed: a 0.1B+ model would need hours on this 2-core machine for the
~480 node prompts (~780 tokens each) a run sends. On it, as for a real model on a GPU, a decoding step costs about
the same at batch 1 and batch 30, while prefill costs scale with the prompt tokens.

Same 16 GSM8K problems, the official search (`reward=answer_nodes`) with a budget of 8 rollouts a tree, 16-token
nodes (sampled, per-node seeds); prints generated nodes/s one tree at a time and 16 in lockstep (engine batch 64,
so a step is one batch), the wall-clock ratio and the engine-call ratio, whether the trees came out the same, then
rollouts per engine call for `answer_nodes` and `probe_every_node`. Each search starts with an empty prefix cache
(the engine keeps the key/value states of prompt prefixes it has seen: a node's prompt is its problem's chat turn
plus its path), so neither setting inherits the other's work. The tiny model writes noise, so no answer is right
(every rollout backtracks): this measures the search's generation pattern, not its quality.
Run: .venv/bin/python tests/benchmarks/bench_mcts.py
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "problems" / "gsm8k" / "test.jsonl"
N_PROBLEMS = 16
OVERRIDES = ["mcts.node_max_tokens=16", "mcts.stop.max_rollouts=8", "mcts.temperature=0.7"]


class WholeNodes:
    """The tiny random model never writes a closing tag: take its 16-token outputs as whole nodes (the search
    drops nodes cut at node_max_tokens), so both runs build the same full trees."""

    def __init__(self, engine):
        self.engine = engine

    def generate(self, prompts, **kw):
        from dataclasses import replace

        return [[replace(c, finish_reason="stop") for c in comps] for comps in self.engine.generate(prompts, **kw)]

    def __getattr__(self, name):
        return getattr(self.engine, name)


def search(searcher_for, problems, per_call: int) -> tuple[float, float, list[dict], object]:
    """Wall and CPU seconds of one search of all problems, `per_call` trees in lockstep; the trees; the searcher."""
    searcher = searcher_for()
    searcher.engines[0].prefixes.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    trees = [t for i in range(0, len(problems), per_call) for t in searcher.search(problems[i:i + per_call])]
    return time.perf_counter() - wall, time.process_time() - cpu, [t.to_dict() for t in trees], searcher


def main() -> int:
    if not DATA.is_file():
        print(f"bench_mcts: skipped, {DATA} not found (needs ../shared/data)")
        return 0
    import torch

    from dlcot.answers import AnswerChecker, normalize_gold
    from dlcot.config import compose
    from dlcot.engines.hf import HFEngine
    from dlcot.mcts.search import Searcher
    from dlcot.records import Problem
    from dlcot.train.tiny import build_tiny_model

    torch.set_num_threads(1)
    rows = [json.loads(line) for line in DATA.read_text().splitlines()[:N_PROBLEMS]]
    problems = [Problem(f"gsm8k/{i}", r["question"], normalize_gold(r["answer"])) for i, r in enumerate(rows)]
    with tempfile.TemporaryDirectory() as tmp, AnswerChecker() as checker:
        engine = WholeNodes(HFEngine(str(build_tiny_model("qwen", Path(tmp) / "tiny")), batch_size=64))
        engine.generate(engine.chat(["warm up"]), max_new_tokens=4)

        def searcher_for(reward: str = "answer_nodes"):
            mcts = compose("mcts", [*OVERRIDES, f"mcts.reward={reward}"]).mcts
            return lambda: Searcher([engine], checker, mcts, seed=0)

        alone, alone_cpu, trees1, s1 = search(searcher_for(), problems, per_call=1)
        lockstep, lockstep_cpu, trees16, s16 = search(searcher_for(), problems, per_call=N_PROBLEMS)
        nodes = sum(len(t["nodes"]) - 1 for t in trees16)
        rollouts = {"answer_nodes": (sum(t["search"]["rollouts"] for t in trees16), s16.stats.engine_calls)}
        _, _, trees_p, sp = search(searcher_for("probe_every_node"), problems, per_call=N_PROBLEMS)
        rollouts["probe_every_node"] = (sum(t["search"]["rollouts"] for t in trees_p), sp.stats.engine_calls)
    same = sum(a == b for a, b in zip(trees1, trees16, strict=True))
    print(f"mcts, hf engine (batch 64), tiny qwen2 on CPU, {N_PROBLEMS} GSM8K problems, official search, 8 rollouts "
          f"a tree, 16-token nodes (sampled, seeded per node), {nodes} nodes:")
    print(f"  one tree at a time: {nodes / alone:.1f} nodes/s ({alone:.1f} s, {s1.stats.engine_calls} engine calls)")
    print(f"  {N_PROBLEMS} trees in lockstep: {nodes / lockstep:.1f} nodes/s ({lockstep:.1f} s, "
          f"{s16.stats.engine_calls} engine calls)")
    print(f"  ratio lockstep / one at a time: {alone / lockstep:.2f}x wall clock ({alone_cpu / lockstep_cpu:.2f}x in "
          f"CPU time, which other work on a shared machine disturbs less), "
          f"{s1.stats.engine_calls / s16.stats.engine_calls:.1f}x fewer engine calls; identical trees "
          f"{same}/{N_PROBLEMS}")
    for mode, (n, calls) in rollouts.items():
        print(f"  reward={mode}: {n} rollouts in {calls} engine calls = {n / calls:.2f} rollouts per call "
              f"({N_PROBLEMS} trees in lockstep)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
