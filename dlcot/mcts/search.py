"""MCTS over typed thought nodes (Marco-o1 v2), many problems in lockstep so every round is two engine calls.

One round, for every tree of the batch that still has an open node:
1. *select*: descend by UCT (mean reward + c·sqrt(ln N / n)) to a node not expanded yet;
2. *expand*: `expand_k` children, their kinds drawn from the transfer matrix with the problem's seeded RNG; a
   node whose answer probe was wrong expands into a `reflection` first (*error backtracking*: the search goes
   back to the node before the wrong answer and reflects there with `instructions.backtrack`, told which answer
   was wrong, never the gold);
3. *simulate*: every new thought node gets an `answer` child (the model asked for the final answer from there),
   and the verifier (`dlcot.answers`, math-verify against gold) rewards it 1 or 0;
4. *backup*: the reward goes to every node on the answer's path.

Nodes are written by one model or several (`teacher.model`, then `mcts.writers`: Marco-o1 v2's multi-model
collaboration): each child's writer is drawn with the problem's RNG, an answer probe is written by its node's
writer, and a backtracking reflection by another writer than the one whose answer was wrong.

All the round's expansions of all trees go to each writer as one batch, then all the probes, which is what
makes vLLM or a server fast here. Samples are keyed by (problem, parent node, slot), so a tree is the same
whatever batch it was searched in, and after a resume.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from omegaconf import DictConfig

from dlcot.answers import AnswerChecker
from dlcot.engines import Engine, sample_seed
from dlcot.mcts.tree import ANSWER, BACKTRACK, REFLECTION, Node, Tree
from dlcot.prompts import fill
from dlcot.records import Problem


@dataclass
class SearchStats:
    engine_calls: int = 0
    generated: int = 0
    generated_tokens: int = 0
    empty: int = 0  # thought generations with no text (not added to the tree)
    truncated: int = 0  # thought generations cut at node_max_tokens (not added: a half-written step)
    by_writer: dict[int, int] = field(default_factory=dict)  # generations per node writer


class Searcher:
    """Searches trees with the node writers (one engine each) and one answer checker (the verifier)."""

    def __init__(self, engines: Sequence[Engine], checker: AnswerChecker, mcts: DictConfig, *, seed: int,
                 system_prompt: str | None = None):
        self.engines, self.checker, self.cfg = list(engines), checker, mcts
        self.seed, self.system_prompt = seed, system_prompt
        self.stats = SearchStats()

    def search(self, problems: Sequence[Problem]) -> list[Tree]:
        trees = [Tree(p.id, p.problem, p.gold_answer) for p in problems]
        rngs = [random.Random(sample_seed(self.seed, p.id, 0)) for p in problems]
        for _ in range(self.cfg.iterations):
            plans: list[tuple[Tree, Node, str, int, str]] = []  # (tree, leaf, kind, writer, sample key)
            for tree, rng in zip(trees, rngs, strict=True):
                leaf = tree.select(self.cfg.exploration, self.cfg.max_depth)
                if leaf is not None:
                    kinds = self.child_kinds(leaf, rng)
                    writers = self.child_writers(leaf, len(kinds), rng)
                    plans += [(tree, leaf, k, w, f"{tree.problem_id}/{leaf.id}/{slot}")
                              for slot, (k, w) in enumerate(zip(kinds, writers, strict=True))]
            if not plans:
                break
            texts = self._generate([self.prompt(tree, leaf, kind) for tree, leaf, kind, _, _ in plans],
                                   [key for *_, key in plans], [w for *_, w, _ in plans])
            new = []
            for (tree, leaf, kind, writer, _), (text, tokens, finish) in zip(plans, texts, strict=True):
                if finish == "length":
                    self.stats.truncated += 1
                elif not text:
                    self.stats.empty += 1
                else:
                    new.append((tree, tree.add(leaf, kind, text, tokens, writer)))
            for tree, leaf, *_ in plans:  # a leaf with no usable child is not selected again
                leaf.barren = all(tree.nodes[c].kind == ANSWER for c in leaf.children)
            self.probe(new)
        return trees

    def child_kinds(self, leaf: Node, rng: random.Random) -> list[str]:
        """`expand_k` kinds allowed after `leaf`: distinct while the matrix allows, a reflection first after a
        wrong answer probe."""
        allowed = list(self.cfg.transfer[leaf.kind])
        kinds = [REFLECTION] if leaf.wrong_answer is not None else []
        pool = [k for k in allowed if k not in kinds]
        while len(kinds) < self.cfg.expand_k:
            if not pool:
                pool = list(allowed)
            kinds.append(pool.pop(rng.randrange(len(pool))))
        return kinds

    def child_writers(self, leaf: Node, k: int, rng: random.Random) -> list[int]:
        """Which writer writes each of `k` children: drawn at random, except that a backtracking reflection
        (the first child after a wrong probe) goes to another writer than the one that answered wrong."""
        n = len(self.engines)
        if n == 1:
            return [0] * k
        first = (leaf.writer + 1) % n if leaf.wrong_answer is not None else rng.randrange(n)
        return [first, *(rng.randrange(n) for _ in range(k - 1))]

    def probe(self, new: list[tuple[Tree, Node]]) -> None:
        """Ask each new thought node for the final answer, verify it, back the reward up the path."""
        if not new:
            return
        texts = self._generate([self.prompt(tree, node, ANSWER) for tree, node in new],
                               [f"{tree.problem_id}/{node.id}/answer" for tree, node in new],
                               [node.writer for _, node in new])
        answers = [tree.add(node, ANSWER, text, tokens, node.writer)
                   for (tree, node), (text, tokens, _) in zip(new, texts, strict=True)]
        verdicts = self.checker.check_many([(tree.gold_answer, a.text) for (tree, _), a in zip(new, answers,
                                                                                             strict=True)])
        for (tree, node), answer, verdict in zip(new, answers, verdicts, strict=True):
            answer.answer, answer.reward = verdict.extracted, float(verdict.correct)
            tree.backup(answer, answer.reward)
            if not verdict.correct and self.cfg.backtrack:
                node.wrong_answer = verdict.extracted or "(no final answer)"

    def prompt(self, tree: Tree, node: Node, kind: str) -> str:
        """The user message asking for a `kind` node after the path to `node`."""
        steps = [n.text for n in tree.path(node)]
        so_far = "\n\n".join(steps) if steps else "(none yet)"
        key = BACKTRACK if kind == REFLECTION and node.wrong_answer is not None else kind
        instruction = self.cfg.instructions[key].format(wrong_answer=node.wrong_answer)
        problem = fill(self.cfg.prompt_template, "mcts.prompt_template", problem=tree.problem)
        return (f"{problem}\n\nSteps so far:\n\n{so_far}\n\n"
                f"Next ({kind.replace('_', ' ')}): {instruction} Write only this step.")

    def _generate(self, prompts: list[str], keys: list[str], writers: list[int]) -> list[tuple[str, int, str]]:
        """(text, tokens, finish reason) of one completion per prompt, one batch per writer."""
        m = self.cfg
        out: list[tuple[str, int, str]] = [("", 0, "stop")] * len(prompts)
        for w in sorted(set(writers)):
            idx = [i for i, x in enumerate(writers) if x == w]
            engine = self.engines[w]
            comps = engine.generate(engine.chat([prompts[i] for i in idx], self.system_prompt), n=1,
                                    max_new_tokens=m.node_max_tokens, temperature=m.temperature, top_p=m.top_p,
                                    seed=self.seed, keys=[keys[i] for i in idx])
            self.stats.engine_calls += 1
            self.stats.by_writer[w] = self.stats.by_writer.get(w, 0) + len(idx)
            for i, (c,) in zip(idx, comps, strict=True):
                out[i] = (c.text.strip(), c.n_tokens, c.finish_reason)
        self.stats.generated += len(prompts)
        self.stats.generated_tokens += sum(tokens for _, tokens, _ in out)
        return out
