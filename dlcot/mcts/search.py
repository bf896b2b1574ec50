"""MCTS over typed thought nodes as the official Marco-o1 v2 code runs it, many problems in lockstep.

A rollout (`mcts.reward=answer_nodes`, official): from the root, a node not expanded yet gets all its children
at once (the transfer matrix's kind → count), then selection descends to its first unvisited child, else by
UCT; the rollout ends on an answer node (a new one, or one written before: its stored reward counts again, as
in the official loop), whose 0/1 verifier reward is backed up the path. After a wrong answer, *error
backtracking* adds one reflection child under the answer's nearest `mcts.backtrack_under` (double-check)
ancestor: a fixed preset text (official), or written by the model (`mcts.reflection=generated`,
`generated_with_answer`: told in its own text which answer was wrong, never the gold). The search of a problem
stops on the first rule of `mcts.stop` that holds after a rollout (gave_up, enough_after, solved, budget) or when
nothing is left to expand (exhausted).

`mcts.reward=probe_every_node` (dlcot's earlier search): selection descends over thought nodes only, and every
new thought node gets an answer probe; each probe is a rollout (the stop rules are checked after each
expansion's probes, so they may overshoot by that expansion's width).

Node text is written the official way: the user message is `mcts.base_prompt` with the problem, the assistant
turn (opened by the writer's own chat template) holds the path so far, then the new node's opening tag and a
preset phrase of its kind, which the writer continues until a closing tag. Each kind is written by
`mcts.roles[kind]` (official: double-check, reflection and thinking-from-scratch by the second model), or by a
random writer (`mcts.writer_mode=random`).

Lockstep: at each step every unfinished tree contributes the one expansion its rollout needs; all of them go to
each writer as one batch, then the new answers are verified in one batch. Samples are keyed by (problem, parent
node, child slot) and each tree has its own seeded RNG, so a tree is the same whatever batch it was searched in.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

from omegaconf import DictConfig, OmegaConf

from dlcot.answers import AnswerChecker
from dlcot.engines import Engine, sample_seed
from dlcot.mcts.tree import ANSWER, REFLECTION, Node, Tree
from dlcot.records import Problem

STOP_REASONS = ("solved", "enough_after", "gave_up", "budget", "exhausted")
TREE_COUNTS = ("rollouts", "correct", "reflections", "generated", "generated_tokens", "empty", "truncated",
               "truncated_answers")


@dataclass
class SearchStats:
    """This process's engine use; the per-tree figures are in each tree's `search` dict."""
    engine_calls: int = 0
    by_writer: dict[int, int] = field(default_factory=dict)  # generations per node writer


@dataclass
class _State:
    tree: Tree
    rng: random.Random
    cursor: Node | None = None  # where the rollout in progress continues
    pending: list[tuple[Node, Node]] = field(default_factory=list)  # (anchor, wrong answer): reflections to add

    @property
    def done(self) -> bool:
        return "stop_reason" in self.tree.search


@dataclass
class _Child:
    state: _State
    parent: Node
    kind: str
    writer: int
    key: str
    head: str  # the node's opening tag and preset phrase, which the writer continues


class Searcher:
    """Searches trees with the node writers (one engine each) and one answer checker (the verifier)."""

    def __init__(self, engines: Sequence[Engine], checker: AnswerChecker, mcts: DictConfig, *, seed: int,
                 system_prompt: str | None = None):
        # plain values: OmegaConf's attribute access would be most of the search's own time
        plain = OmegaConf.to_container(mcts, resolve=True) if isinstance(mcts, DictConfig) else dict(mcts)
        self.engines, self.checker = list(engines), checker
        self.cfg = SimpleNamespace(**{**plain, "stop": SimpleNamespace(**plain["stop"])})
        self.seed, self.system_prompt = seed, system_prompt
        self.answers_planned = self.cfg.reward == "answer_nodes"
        self.closers = sorted({f"</{t}>" for t in self.cfg.tags.values()})
        self.stats = SearchStats()
        self._chats: dict[tuple[int, str], str] = {}

    def search(self, problems: Sequence[Problem]) -> list[Tree]:
        states = [_State(Tree(p.id, p.problem, p.gold_answer), random.Random(sample_seed(self.seed, p.id, 0)))
                  for p in problems]
        for st in states:
            st.tree.search = dict.fromkeys(TREE_COUNTS, 0)
        while True:
            children = [c for st in states if not st.done for c in self._advance(st)]
            if not children:
                break
            thoughts = self._write(children)
            if not self.answers_planned:
                self._probe(thoughts)
        return [st.tree for st in states]

    # ------------------------------------------------------------------------------------- one tree's rollouts
    def _advance(self, st: _State) -> list[_Child]:
        """Run `st`'s rollouts until one needs children written (returned) or its search stops ([])."""
        tree = st.tree
        while not st.done:
            if len(tree.nodes) >= self.cfg.stop.max_nodes:
                tree.search["stop_reason"] = "budget"
                break
            if st.pending:
                anchor, wrong = st.pending.pop(0)
                planned = self._plan(st, anchor, {REFLECTION: 1}, wrong)
                if planned:
                    return planned
                continue
            node = st.cursor or tree.root
            if node.kind == ANSWER:
                st.cursor = None
                self._finish(st, node)
                continue
            if not node.expanded:
                st.cursor = node
                planned = self._plan(st, node, self._counts(node))
                if planned:
                    return planned
                continue
            kid = tree.best_child(node, self.cfg.exploration, st.rng, self.answers_planned)
            if kid is None:  # nothing below is left (children the writer failed to write): start over
                if node is tree.root:
                    tree.search["stop_reason"] = "exhausted"
                st.cursor = None
                continue
            st.cursor = kid
        return []

    def _counts(self, node: Node) -> dict[str, int]:
        counts = dict(self.cfg.transfer.get(node.kind, {}))
        if self.cfg.max_depth and node.depth >= self.cfg.max_depth:
            counts = {ANSWER: 1} if self.answers_planned else {}
        if not self.answers_planned:
            counts.pop(ANSWER, None)
        return counts

    def _finish(self, st: _State, answer: Node) -> None:
        """One rollout ended on `answer`: back its reward up, backtrack after a wrong one, check the stop rules."""
        tree, s = st.tree, st.tree.search
        tree.backup(answer, answer.reward)
        s["rollouts"] += 1
        s["correct"] += int(answer.reward == 1.0)
        if answer.reward != 1.0 and self.cfg.reflection != "none":
            anchor = tree.ancestor(answer, self.cfg.backtrack_under)
            if anchor is not None:
                st.pending.append((anchor, answer))
                s["reflections"] += 1
        reason = stop_reason(s["rollouts"], s["correct"], self.cfg.stop)
        if reason and not st.done:
            s["stop_reason"] = reason

    def _plan(self, st: _State, parent: Node, counts: dict[str, int], wrong: Node | None = None) -> list[_Child]:
        """The children `counts` asks for under `parent`: preset-only ones are added at once, the rest returned to
        be written. One phrase per kind and expansion, as the official code draws it."""
        tree, m = st.tree, self.cfg
        out = []
        for kind, n in counts.items():
            if n <= 0:
                continue
            tag = m.tags[kind]
            phrase = self._phrase(kind, st.rng, wrong)
            for _ in range(n):
                writer = self._writer(kind, st.rng, wrong)
                slot = parent.planned
                parent.planned += 1
                if phrase.endswith(f"</{tag}>"):
                    tree.add(parent, kind, f"<{tag}>{phrase}", 0, writer)
                    continue
                out.append(_Child(st, parent, kind, writer, f"{tree.problem_id}/{parent.id}/{slot}",
                                  f"<{tag}>{phrase}"))
        if not out:
            parent.expanded = True
            tree.settle(parent, self.answers_planned)
        return out

    def _phrase(self, kind: str, rng: random.Random, wrong: Node | None) -> str:
        phrases = list(self.cfg.phrases.get(kind) or [""])
        phrase = phrases[rng.randrange(len(phrases))]
        if kind == REFLECTION and wrong is not None and self.cfg.reflection.startswith("generated"):
            phrase = phrase.removesuffix(f"</{self.cfg.tags[kind]}>").rstrip()
            if self.cfg.reflection == "generated_with_answer":
                told = self.cfg.reflection_told.replace("{wrong_answer}", wrong.answer or "no final answer")
                phrase = f"{phrase}\n{told}\n" if phrase else f"{told}\n"
        return phrase

    def _writer(self, kind: str, rng: random.Random, wrong: Node | None) -> int:
        n = len(self.engines)
        if self.cfg.writer_mode == "roles":
            w = int(self.cfg.roles.get(kind, 0))
            return w if w < n else 0
        if n == 1:
            return 0
        if wrong is not None and kind == REFLECTION:
            return (wrong.writer + 1) % n  # another writer than the one that answered wrong
        return rng.randrange(n)

    # ------------------------------------------------------------------------------------ writing, verifying
    def _write(self, children: list[_Child]) -> list[tuple[_State, Node]]:
        """Write every child (one batch per writer), add the usable ones, verify the new answers; returns the new
        thought nodes."""
        results = self._generate(children)
        new: list[tuple[_State, Node]] = []
        for child, (text, tokens, finish) in zip(children, results, strict=True):
            s = child.state.tree.search
            s["generated"] += 1
            s["generated_tokens"] += tokens
            child.parent.expanded = True
            if finish == "length":  # a half-written step or an answer cut off: not added, counted
                s["truncated_answers" if child.kind == ANSWER else "truncated"] += 1
            elif not text.strip():
                s["empty"] += 1
            else:
                tag = self.cfg.tags[child.kind]
                node = child.state.tree.add(child.parent, child.kind, f"{child.head}{text.rstrip()}</{tag}>",
                                            tokens, child.writer)
                new.append((child.state, node))
        for child in children:
            if child.kind != ANSWER or self.answers_planned:  # a probe is not an expansion
                child.state.tree.settle(child.parent, self.answers_planned)
        answers = [(st, n) for st, n in new if n.kind == ANSWER]
        verdicts = self.checker.check_many([(st.tree.gold_answer, n.text) for st, n in answers])
        for (_, node), verdict in zip(answers, verdicts, strict=True):
            node.answer, node.reward = verdict.extracted, float(verdict.correct)
        return [(st, n) for st, n in new if n.kind != ANSWER]

    def _probe(self, thoughts: list[tuple[_State, Node]]) -> None:
        """probe_every_node: one answer child per new thought node, each a rollout; the next rollout of the tree
        starts again from the root."""
        probes = [c for st, node in thoughts if not st.done for c in self._plan(st, node, {ANSWER: 1})]
        if probes:
            self._write(probes)
        for st, node in thoughts:
            node.expanded = False  # the probe is not an expansion: its thought children are still to come
            st.cursor = None
            for answer in [st.tree.nodes[c] for c in node.children]:
                if answer.kind == ANSWER and answer.reward is not None:
                    self._finish(st, answer)

    def _prompt(self, child: _Child) -> str:
        """The writer's chat template around the user message, then the assistant turn so far: the path's node
        texts (each on its own line) and the new node's head, which the writer continues."""
        tree = child.state.tree
        key = (child.writer, tree.problem_id)
        if key not in self._chats:
            user = self.cfg.base_prompt.replace("{problem}", tree.problem)
            self._chats[key] = self.engines[child.writer].chat([user], self.system_prompt)[0]
        path = "".join(f"{n.text}\n" for n in tree.path(child.parent))
        return f"{self._chats[key]}{path}{child.head}"

    def _generate(self, children: list[_Child]) -> list[tuple[str, int, str]]:
        """(text, tokens, finish reason) of one completion per child, one batch per writer."""
        m = self.cfg
        out: list[tuple[str, int, str]] = [("", 0, "stop")] * len(children)
        for w in sorted({c.writer for c in children}):
            idx = [i for i, c in enumerate(children) if c.writer == w]
            comps = self.engines[w].generate([self._prompt(children[i]) for i in idx], n=1,
                                             max_new_tokens=m.node_max_tokens, temperature=m.temperature,
                                             top_p=m.top_p, stop=self.closers, seed=self.seed,
                                             keys=[children[i].key for i in idx])
            self.stats.engine_calls += 1
            self.stats.by_writer[w] = self.stats.by_writer.get(w, 0) + len(idx)
            for i, (c,) in zip(idx, comps, strict=True):
                out[i] = (c.text, c.n_tokens, c.finish_reason)
        return out


def stop_reason(rollouts: int, correct: int, stop: DictConfig | SimpleNamespace) -> str | None:
    """The first stop rule that holds after `rollouts` rollouts with `correct` correct ones (official order)."""
    if rollouts > stop.give_up_after and correct < stop.enough:
        return "gave_up"
    if rollouts > stop.enough_after and correct >= stop.enough:
        return "enough_after"
    if correct >= stop.solved:
        return "solved"
    if rollouts >= stop.max_rollouts:
        return "budget"
    return None
