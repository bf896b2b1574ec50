"""MCTS with trees in lockstep (one engine batch per round for all of them) vs one tree at a time.

Same 8 GSM8K problems, the hf engine on a tiny student on CPU (engine batch 8, sampled with per-node seeds,
32-token nodes, one torch thread), 3 rounds of 2 children + their answer probes per tree; prints generated
nodes/s for both and the ratio, best of 3, and whether the trees came out the same. The tiny model writes
noise, so no answer is right: this measures the search's generation pattern, not its quality.
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
N_PROBLEMS = 8


class WholeNodes:
    """The tiny random model never stops on its own: take its 32-token outputs as whole nodes (the search drops
    nodes cut at node_max_tokens), so both runs build the same full trees."""

    def __init__(self, engine):
        self.engine = engine

    def generate(self, prompts, **kw):
        from dataclasses import replace

        return [[replace(c, finish_reason="stop") for c in comps] for comps in self.engine.generate(prompts, **kw)]

    def __getattr__(self, name):
        return getattr(self.engine, name)


def nodes_per_s(searcher_for, problems, per_call: int, repeats: int = 3) -> tuple[float, list[dict]]:
    """Best of `repeats` searches of all problems, `per_call` trees in lockstep."""
    best, trees = float("inf"), []
    for _ in range(repeats):
        searcher = searcher_for()
        start = time.perf_counter()
        trees = [t for i in range(0, len(problems), per_call) for t in searcher.search(problems[i:i + per_call])]
        best = min(best, time.perf_counter() - start)
    return searcher.stats.generated / best, [t.to_dict() for t in trees]


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
    from dlcot.testing import build_tiny_model

    torch.set_num_threads(1)
    rows = [json.loads(line) for line in DATA.read_text().splitlines()[:N_PROBLEMS]]
    problems = [Problem(f"gsm8k/{i}", r["question"], normalize_gold(r["answer"])) for i, r in enumerate(rows)]
    mcts = compose("mcts", ["mcts.iterations=3", "mcts.expand_k=2", "mcts.node_max_tokens=32",
                            "mcts.temperature=0.7"]).mcts
    with tempfile.TemporaryDirectory() as tmp, AnswerChecker() as checker:
        engine = WholeNodes(HFEngine(str(build_tiny_model("qwen", Path(tmp) / "tiny")), batch_size=8))
        engine.generate(engine.chat(["warm up"]), max_new_tokens=4)

        def searcher_for():
            return Searcher([engine], checker, mcts, seed=0)

        alone, trees1 = nodes_per_s(searcher_for, problems, per_call=1)
        lockstep, trees8 = nodes_per_s(searcher_for, problems, per_call=N_PROBLEMS)
    same = sum(a == b for a, b in zip(trees1, trees8, strict=True))
    print(f"mcts, hf engine (batch 8), tiny qwen2 on CPU, {N_PROBLEMS} GSM8K problems, 3 rounds x 2 children "
          f"+ probes, 32-token nodes (sampled, seeded per node), {sum(len(t['nodes']) - 1 for t in trees8)} nodes:")
    print(f"  one tree at a time: {alone:.1f} nodes/s")
    print(f"  {N_PROBLEMS} trees in lockstep: {lockstep:.1f} nodes/s")
    print(f"  ratio lockstep / one at a time: {lockstep / alone:.2f}x; identical trees {same}/{N_PROBLEMS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
