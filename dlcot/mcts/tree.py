"""A reasoning tree of typed thought nodes (Marco-o1 v2) and the UCT bookkeeping MCTS does on it.

Node kinds (the official code's actions): `sub_task` (split the problem), `thinking` (one step of work),
`hypothesis` (a guess to test), `double_check` (verify), `reflection` (something is wrong),
`thinking_from_scratch` (start over after a reflection) and `answer` (terminal: the final answer, rewarded 1 or 0
by the verifier). The *transfer matrix* (`mcts.transfer`, kind → {kind: count}) says which kinds follow which and
how many children of each an expansion creates, all at once; the root is the problem itself.

A node stores its own text, wrapped in its tag (`<thinking>…</thinking>`); a path's text is its nodes' texts
joined by newlines, as the official code concatenates them, so two paths that share nodes share a text prefix
that ends on a line boundary (what DPO's common-prefix masking cuts at).

Selection is the official one: the first unvisited child (creation order), else the child maximising
Q + c·√(2·ln N / n), ties broken at random with the problem's seeded RNG.
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dlcot.schema import TRANSFER_ROOT, NodeKind

KINDS = NodeKind.options()  # the transfer matrix is checked with the rest of the mcts section (dlcot.schema)
ROOT, ANSWER, REFLECTION = TRANSFER_ROOT, NodeKind.answer.value, NodeKind.reflection.value


@dataclass
class Node:
    id: int
    parent: int | None
    kind: str
    text: str = ""
    depth: int = 0
    children: list[int] = field(default_factory=list)
    visits: int = 0
    value: float = 0.0  # sum of the rewards backed up through this node
    answer: str | None = None  # answer nodes: the extracted answer (None: the node stated none)
    reward: float | None = None  # answer nodes: the verifier's 1.0 / 0.0
    tokens: int = 0
    writer: int = 0  # which node writer (0: teacher.model, then mcts.writers) wrote it
    expanded: bool = False  # its children (the transfer matrix's counts) were created
    planned: int = 0  # children asked for so far: the sample key of the next one (failed ones included)
    dead: bool = False  # expanded, and nothing selectable is left below (children the writer failed to write)


@dataclass
class Tree:
    """One problem's search tree; nodes are kept in creation order (ids are list indices). `search` holds the
    per-tree search figures (rollouts, correct, stop reason, generations) so stats add up across resumes."""
    problem_id: str
    problem: str
    gold_answer: str
    nodes: list[Node] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes.append(Node(0, None, ROOT))

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add(self, parent: Node, kind: str, text: str, tokens: int, writer: int = 0) -> Node:
        node = Node(len(self.nodes), parent.id, kind, text.strip(), parent.depth + 1, tokens=tokens, writer=writer)
        self.nodes.append(node)
        parent.children.append(node.id)
        cur: Node | None = parent
        while cur is not None and cur.dead and kind != ANSWER:  # a reflection under a dead node revives the path
            cur.dead = False
            cur = self.nodes[cur.parent] if cur.parent is not None else None
        return node

    def path(self, node: Node) -> list[Node]:
        """Root (excluded) to `node` (included)."""
        out = []
        while node.parent is not None:
            out.append(node)
            node = self.nodes[node.parent]
        return out[::-1]

    def ancestor(self, node: Node, kind: str) -> Node | None:
        """The nearest ancestor of `kind`, starting from `node`'s parent (the official `find_parent_by_action`)."""
        while node.parent is not None:
            node = self.nodes[node.parent]
            if node.kind == kind:
                return node
        return None

    def selectable(self, node: Node, answers: bool) -> bool:
        """Can a rollout go to `node`: an answer (when answers are selectable), or a thought not known dead."""
        return answers if node.kind == ANSWER else not node.dead

    def settle(self, node: Node, answers: bool) -> None:
        """After `node` was expanded: if no child is selectable it is dead, and so is every ancestor left with
        no selectable child (kept as a flag, so selection never walks a subtree)."""
        cur: Node | None = node
        while cur is not None and cur.expanded and not any(self.selectable(self.nodes[c], answers)
                                                            for c in cur.children):
            cur.dead = True
            cur = self.nodes[cur.parent] if cur.parent is not None else None

    def best_child(self, node: Node, exploration: float, rng: random.Random, answers: bool) -> Node | None:
        """The official selection among `node`'s live children; None when it has none."""
        kids = [self.nodes[c] for c in node.children if self.selectable(self.nodes[c], answers)]
        for kid in kids:
            if kid.visits == 0:
                return kid
        if not kids:
            return None
        log_n = math.log(max(node.visits, 1))
        scores = [k.value / k.visits + exploration * math.sqrt(2 * log_n / k.visits) for k in kids]
        top = max(scores)
        return rng.choice([k for k, s in zip(kids, scores, strict=True) if s == top])

    def backup(self, node: Node, reward: float) -> None:
        """Add one visit and `reward` to `node` and every ancestor up to the root."""
        cur: Node | None = node
        while cur is not None:
            cur.visits += 1
            cur.value += reward
            cur = self.nodes[cur.parent] if cur.parent is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.problem_id, "problem": self.problem, "gold_answer": self.gold_answer,
                "search": self.search, "nodes": [asdict(n) for n in self.nodes]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tree:
        return cls(d["id"], d["problem"], d["gold_answer"], [Node(**n) for n in d["nodes"]], dict(d.get("search", {})))
