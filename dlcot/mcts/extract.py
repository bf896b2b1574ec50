"""Searched trees → training data: one SFT trace per solved problem, preference pairs from the same tree.

A *path* runs from the root to one answer node; its thought nodes' tagged texts, one per line (as the official
code concatenates them), are the reasoning and the answer node's text is the response (the `Trace` format, so
`dlcot train` reads `sft.jsonl` like any traces).

*Thoughts Length Balance* (Marco-o1 v2): a small student learns long CoT badly, so the SFT path is picked by its
length relative to the problem's other correct paths, by the nearest-rank rule: the ⌈q·n⌉-th shortest of the n
correct paths (`mcts.length_quantile` q; 0 the shortest, 0.5 the lower median, 1 the longest; lengths in
generated tokens, ties by creation order).

*Pairs* for fine-grained DPO (`mcts.pairs`): each wrong path is paired with one correct path, never one that
merely goes on from the wrong path's last thought (the rejected thoughts would be a prefix of the chosen ones:
"answer now, wrong" vs "keep thinking, right" teaches only "be longer"). `prefix=min` (the paper: "we minimised
the public prefix while sampling") takes the correct path sharing the fewest nodes, `max` the most;
`length=balanced` (the paper's length selection, against DPO's pull toward long outputs) first prefers correct
paths whose length is within `max_ratio` of the wrong one's, then the prefix rule, then the closest length. At
most `pairs.max` pairs per problem, in that order of preference, each wrong path used once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from statistics import mean
from typing import Any

from dlcot.mcts.tree import ANSWER, Node, Tree

MAX_RATIO = 1.5  # length=balanced: a chosen/rejected token ratio within [1/1.5, 1.5] counts as balanced


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
        return "\n".join(n.text for n in self.nodes[:-1])

    def shared(self, other: Path) -> int:
        """How many nodes (from the root) the two paths have in common."""
        n = 0
        for a, b in zip(self.nodes, other.nodes, strict=False):
            if a.id != b.id:
                break
            n += 1
        return n

    def shared_tokens(self, other: Path) -> int:
        return sum(n.tokens for n in self.nodes[:self.shared(other)])


def paths(tree: Tree) -> list[Path]:
    """One path per distinct answer node (an answer revisited by several rollouts is one path)."""
    return [Path(tree.path(a)) for a in tree.nodes if a.kind == ANSWER and a.reward is not None]


def balanced(candidates: list[Path], quantile: float) -> Path | None:
    """The correct path at `quantile` of the correct paths' lengths by nearest rank, or None."""
    good = sorted((p for p in candidates if p.correct), key=lambda p: (p.tokens, p.answer.id))
    if not good:
        return None
    rank = math.ceil(Fraction(str(quantile)) * len(good))  # exact: no float or half-to-even rounding
    return good[max(rank, 1) - 1]


def log_ratio(chosen: Path, rejected: Path) -> float:
    return abs(math.log(max(chosen.tokens, 1) / max(rejected.tokens, 1)))


def preference_pairs(candidates: list[Path], prefix: str = "min", length: str = "balanced",
                     max_pairs: int = 4) -> list[tuple[Path, Path]]:
    """(chosen, rejected) pairs by the rules of the module docstring."""
    good = [p for p in candidates if p.correct]
    sign = 1 if prefix == "min" else -1

    def key(chosen: Path, rejected: Path) -> tuple:
        rule = (sign * chosen.shared(rejected), log_ratio(chosen, rejected) if length == "balanced" else 0.0,
                chosen.tokens, chosen.answer.id)
        if length == "balanced":
            return (log_ratio(chosen, rejected) > math.log(MAX_RATIO), *rule)
        return rule

    scored = []
    for bad in (p for p in candidates if not p.correct):
        eligible = [g for g in good if g.shared(bad) < len(bad.nodes) - 1]  # bad's thoughts not all on g
        if eligible:
            best = min(eligible, key=lambda g, bad=bad: key(g, bad))
            scored.append((key(best, bad), bad.answer.id, best, bad))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [(chosen, rejected) for *_, chosen, rejected in scored[:max_pairs]]


def pair_stats(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """How long the chosen sides are against the rejected ones, and how much of a pair is shared prefix."""
    if not pairs:
        return {"pair_token_ratio_mean": None, "pair_chosen_longer": None, "pair_shared_fraction_mean": None,
                "pair_shared_nodes_mean": None}
    return {"pair_token_ratio_mean": mean(p["chosen_tokens"] / max(p["rejected_tokens"], 1) for p in pairs),
            "pair_chosen_longer": mean(p["chosen_tokens"] > p["rejected_tokens"] for p in pairs),
            "pair_shared_fraction_mean": mean(2 * p["shared_tokens"] / max(p["chosen_tokens"] + p["rejected_tokens"],
                                                                           1) for p in pairs),
            "pair_shared_nodes_mean": mean(p["shared_nodes"] for p in pairs)}


def trace_row(tree: Tree, path: Path, n_correct: int) -> dict[str, Any]:
    return {"id": tree.problem_id, "problem": tree.problem, "gold_answer": tree.gold_answer,
            "reasoning": path.reasoning, "response": path.answer.text, "teacher": "mcts", "source": "mcts",
            "kinds": [n.kind for n in path.nodes], "writers": [n.writer for n in path.nodes], "tokens": path.tokens,
            "n_correct_paths": n_correct}


def pair_record(tree: Tree, k: int, chosen: Path, rejected: Path) -> dict[str, Any]:
    return {"id": f"{tree.problem_id}/pair{k}", "problem": tree.problem, "gold_answer": tree.gold_answer,
            "chosen": chosen.reasoning, "chosen_response": chosen.answer.text,
            "rejected": rejected.reasoning, "rejected_response": rejected.answer.text,
            "shared_nodes": chosen.shared(rejected), "shared_tokens": chosen.shared_tokens(rejected),
            "chosen_tokens": chosen.tokens, "rejected_tokens": rejected.tokens,
            "rejected_answer": rejected.answer.answer}
