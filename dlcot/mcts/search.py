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

All the round's expansions of all trees go to the engine as one batch, then all the probes as another, which is
what makes vLLM or a server fast here. Samples are keyed by (problem, parent node, slot), so a tree is the same
whatever batch it was searched in, and after a resume.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from omegaconf import DictConfig

from dlcot.answers import AnswerChecker
from dlcot.engines import Engine, sample_seed
from dlcot.mcts.tree import ANSWER, BACKTRACK, REFLECTION, Node, Tree
from dlcot.records import Problem


@dataclass
class SearchStats:
    engine_calls: int = 0
    generated: int = 0
    generated_tokens: int = 0
    empty: int = 0  # thought generations with no text (not added to the tree)
    truncated: int = 0  # thought generations cut at node_max_tokens (not added: a half-written step)


class Searcher:
    """Searches trees with one engine (the model writing the nodes) and one answer checker (the verifier)."""

    def __init__(self, engine: Engine, checker: AnswerChecker, mcts: DictConfig, *, seed: int,
                 system_prompt: str | None = None):
        self.engine, self.checker, self.cfg = engine, checker, mcts
        self.seed, self.system_prompt = seed, system_prompt
        self.stats = SearchStats()

    def search(self, problems: Sequence[Problem]) -> list[Tree]:
        trees = [Tree(p.id, p.problem, p.gold_answer) for p in problems]
        rngs = [random.Random(sample_seed(self.seed, p.id, 0)) for p in problems]
        for _ in range(self.cfg.iterations):
            plans: list[tuple[Tree, Node, str, str]] = []
            for tree, rng in zip(trees, rngs, strict=True):
                leaf = tree.select(self.cfg.exploration, self.cfg.max_depth)
                if leaf is not None:
                    plans += [(tree, leaf, kind, f"{tree.problem_id}/{leaf.id}/{slot}")
                              for slot, kind in enumerate(self.child_kinds(leaf, rng))]
            if not plans:
                break
            texts = self._generate([self.prompt(tree, leaf, kind) for tree, leaf, kind, _ in plans],
                                   [key for *_, key in plans])
            new = []
            for (tree, leaf, kind, _), (text, tokens, finish) in zip(plans, texts, strict=True):
                if finish == "length":
                    self.stats.truncated += 1
                elif not text:
                    self.stats.empty += 1
                else:
                    new.append((tree, tree.add(leaf, kind, text, tokens)))
            for tree, leaf, _, _ in plans:  # a leaf with no usable child is not selected again
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

    def probe(self, new: list[tuple[Tree, Node]]) -> None:
        """Ask each new thought node for the final answer, verify it, back the reward up the path."""
        if not new:
            return
        texts = self._generate([self.prompt(tree, node, ANSWER) for tree, node in new],
                               [f"{tree.problem_id}/{node.id}/answer" for tree, node in new])
        answers = [tree.add(node, ANSWER, text, tokens) for (tree, node), (text, tokens, _) in zip(new, texts,
                                                                                                     strict=True)]
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
        return (f"{self.cfg.prompt_template.format(problem=tree.problem)}\n\nSteps so far:\n\n{so_far}\n\n"
                f"Next ({kind.replace('_', ' ')}): {instruction} Write only this step.")

    def _generate(self, prompts: list[str], keys: list[str]) -> list[tuple[str, int, str]]:
        """(text, tokens, finish reason) of one completion per prompt."""
        m = self.cfg
        outs = self.engine.generate(self.engine.chat(prompts, self.system_prompt), n=1,
                                    max_new_tokens=m.node_max_tokens, temperature=m.temperature, top_p=m.top_p,
                                    seed=self.seed, keys=keys)
        self.stats.engine_calls += 1
        self.stats.generated += len(prompts)
        self.stats.generated_tokens += sum(c[0].n_tokens for c in outs)
        return [(c[0].text.strip(), c[0].n_tokens, c[0].finish_reason) for c in outs]
