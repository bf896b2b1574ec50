"""Searched trees → training data: one SFT trace per solved problem, preference pairs that share a prefix.

A *path* runs from the root to one answer node; its thought nodes, joined by blank lines, are the reasoning and
the answer node's text is the response (the `Trace` format, so `dlcot train` reads `sft.jsonl` like any traces).

*Thoughts Length Balance* (Marco-o1 v2): a small student learns long CoT badly, so the SFT path is picked by its
length relative to the problem's other correct paths: `mcts.length_quantile` 0 takes the shortest, 1 the longest,
0.5 the median (lengths in generated tokens).

*Pairs* for fine-grained DPO: every wrong answer is paired with the correct path that shares the most nodes with
it (ties: the shorter), so the two differ only after the node where the search went wrong; the deepest-shared
pairs are kept first, at most `mcts.max_pairs` per problem, each rejected path used once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlcot.mcts.tree import ANSWER, Node, Tree


@dataclass
class Path:
    nodes: list[Node]  # root excluded, the answer node last

    @property
    def answer(self) -> Node:
        return self.nodes[-1]

    @property
    def correct(self) -> bool:
        return self.answer.reward == 1.0

    @property
    def tokens(self) -> int:
        return sum(n.tokens for n in self.nodes)

    @property
    def reasoning(self) -> str:
        return "\n\n".join(n.text for n in self.nodes[:-1])

    def shared(self, other: Path) -> int:
        """How many nodes (from the root) the two paths have in common."""
        n = 0
        for a, b in zip(self.nodes, other.nodes, strict=False):
            if a.id != b.id:
                break
            n += 1
        return n


def paths(tree: Tree) -> list[Path]:
    return [Path(tree.path(a)) for a in tree.nodes if a.kind == ANSWER]


def balanced(candidates: list[Path], quantile: float) -> Path | None:
    """The correct path at `quantile` of the correct paths' lengths (ties by creation order), or None."""
    good = sorted((p for p in candidates if p.correct), key=lambda p: (p.tokens, p.answer.id))
    return good[round(quantile * (len(good) - 1))] if good else None


def preference_pairs(candidates: list[Path], max_pairs: int) -> list[tuple[Path, Path]]:
    """(chosen, rejected) pairs, deepest shared prefix first (see the module docstring)."""
    good = [p for p in candidates if p.correct]
    if not good:
        return []
    pairs = []
    for bad in (p for p in candidates if not p.correct):
        best = max(good, key=lambda g: (g.shared(bad), -g.tokens, -g.answer.id))
        pairs.append((best.shared(bad), best, bad))
    pairs.sort(key=lambda t: (-t[0], t[2].answer.id))
    return [(chosen, rejected) for _, chosen, rejected in pairs[:max_pairs]]


def trace_row(tree: Tree, path: Path, n_correct: int) -> dict[str, Any]:
    return {"id": tree.problem_id, "problem": tree.problem, "gold_answer": tree.gold_answer,
            "reasoning": path.reasoning, "response": path.answer.text, "teacher": "mcts", "source": "mcts",
            "kinds": [n.kind for n in path.nodes], "writers": [n.writer for n in path.nodes], "tokens": path.tokens,
            "n_correct_paths": n_correct}


def pair_row(tree: Tree, k: int, chosen: Path, rejected: Path) -> dict[str, Any]:
    return {"id": f"{tree.problem_id}/pair{k}", "problem": tree.problem, "gold_answer": tree.gold_answer,
            "chosen": chosen.reasoning, "chosen_response": chosen.answer.text,
            "rejected": rejected.reasoning, "rejected_response": rejected.answer.text,
            "shared_nodes": chosen.shared(rejected), "rejected_answer": rejected.answer.answer}
