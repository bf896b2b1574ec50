"""A reasoning tree of typed thought nodes (Marco-o1 v2) and the UCT bookkeeping MCTS does on it.

Node kinds: `sub_task` (split the problem), `thinking` (one step of work), `hypothesis` (a guess to test),
`double_check` (verify the last step), `reflection` (find the error after a wrong answer) and `answer`
(terminal: states the final answer, rewarded 1 or 0 by the verifier). A *transfer matrix* says which thought
kinds may follow which (`mcts.transfer`); the root is the problem itself. Every thought node gets one answer
child as soon as it exists: the probe that scores it (the simulation step of MCTS).

Every node stores its own text only; a path's text is its nodes' texts joined by blank lines, so two paths that
share nodes share a text prefix that ends on a paragraph boundary (what DPO's common-prefix masking cuts at).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dlcot.errors import ConfigError

KINDS = ("sub_task", "thinking", "hypothesis", "double_check", "reflection", "answer")
ROOT, ANSWER, REFLECTION = "root", "answer", "reflection"
BACKTRACK = "backtrack"  # the instruction for a reflection after a wrong answer probe


def check_transfer(transfer: Mapping[str, Sequence[str]]) -> None:
    """Thought kinds only (answers are the verifier's probes, never planned), the root can start a path, and
    every thought kind can be followed."""
    thoughts = [k for k in KINDS if k != ANSWER]
    for src, dsts in transfer.items():
        unknown = [k for k in (src, *dsts) if k not in (*thoughts, ROOT)]
        if unknown:
            raise ConfigError(f"mcts.transfer.{src}: {unknown} not thought kinds ({', '.join(thoughts)}); answer "
                              "nodes are not planned: every thought node gets one as the verifier's probe")
    missing = [k for k in (ROOT, *thoughts) if not transfer.get(k)]
    if missing:
        raise ConfigError(f"mcts.transfer: no successors for {missing}; every thought kind needs at least one")


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
    wrong_answer: str | None = None  # a wrong answer probed below: the next expansion starts with a reflection
    barren: bool = False  # expanded, but the model wrote nothing for any child: not selected again


@dataclass
class Tree:
    """One problem's search tree; nodes are kept in creation order (ids are list indices)."""
    problem_id: str
    problem: str
    gold_answer: str
    nodes: list[Node] = field(default_factory=list)

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
        return node

    def path(self, node: Node) -> list[Node]:
        """Root (excluded) to `node` (included)."""
        out = []
        while node.parent is not None:
            out.append(node)
            node = self.nodes[node.parent]
        return out[::-1]

    def open(self, node: Node, max_depth: int) -> bool:
        """Can search still go below `node`: not an answer, and (unexpanded and shallow enough, or an open child)."""
        if node.kind == ANSWER or node.barren:
            return False
        kids = [self.nodes[c] for c in node.children if self.nodes[c].kind != ANSWER]
        if not kids:
            return node.depth < max_depth
        return any(self.open(k, max_depth) for k in kids)

    def select(self, exploration: float, max_depth: int) -> Node | None:
        """Descend by UCT over open thought children to a node with none yet (the one to expand); None when the
        tree has no open node left. Unvisited children are taken first, in creation order."""
        node = self.root
        if not self.open(node, max_depth):
            return None
        while True:
            kids = [self.nodes[c] for c in node.children
                    if self.nodes[c].kind != ANSWER and self.open(self.nodes[c], max_depth)]
            if not kids:
                return node
            log_n = math.log(max(node.visits, 1))
            node = max(kids, key=lambda k: math.inf if k.visits == 0 else
                       k.value / k.visits + exploration * math.sqrt(log_n / k.visits))

    def backup(self, node: Node, reward: float) -> None:
        """Add one visit and `reward` to `node` and every ancestor up to the root."""
        cur: Node | None = node
        while cur is not None:
            cur.visits += 1
            cur.value += reward
            cur = self.nodes[cur.parent] if cur.parent is not None else None

    def answers(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == ANSWER]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.problem_id, "problem": self.problem, "gold_answer": self.gold_answer,
                "nodes": [asdict(n) for n in self.nodes]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tree:
        return cls(d["id"], d["problem"], d["gold_answer"], [Node(**n) for n in d["nodes"]])
