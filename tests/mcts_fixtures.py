"""A scripted MCTS node writer for tests: it reads which node it is asked for from the prompt (the last opening
tag of the assistant turn) and writes it; an answer is right when `right(path)` holds for the path so far
(default: the path went through a reflection, i.e. error backtracking happened), never for `unsolvable`."""
from __future__ import annotations

import re
from collections.abc import Callable

from dlcot.engines.scripted import ScriptedEngine
from dlcot.mcts.tree import ANSWER

OPEN = re.compile(r"<([a-z_-]+)>")
TAG_KIND = {"sub-task": "sub_task", "double-check": "double_check"}


class Oracle:
    """Counts engine calls and prompts, records (kind, prompt) of each request; dies on a `fail_on` problem."""

    def __init__(self, problems, unsolvable=(), fail_on=(), right: Callable[[str], bool] | None = None):
        self.gold = {p.problem: p.gold_answer for p in problems}
        self.unsolvable = {p.problem for p in problems if p.id in unsolvable}
        self.fail_on = {p.problem for p in problems if p.id in fail_on}
        self.right = right or (lambda path: "<reflection>" in path)
        self.calls, self.prompts, self.seen, self.stops = 0, 0, [], []
        self.engine = ScriptedEngine(self.respond)

    def respond(self, prompt: str, sample: int) -> str:
        problem = next(p for p in self.gold if f"Problem: {p}" in prompt)
        if problem in self.fail_on:
            raise RuntimeError("engine died")
        path = prompt.split(f"Problem: {problem}", 1)[1]
        tag = OPEN.findall(path)[-1]
        kind = TAG_KIND.get(tag, tag)
        self.seen.append((kind, prompt))
        if kind == ANSWER:
            ok = self.right(path) and problem not in self.unsolvable
            return f" \\boxed{{{self.gold[problem] if ok else self.gold[problem] + '7'}}}"
        return f" step {path.count('</')} of the work" + " and more words" * (len(prompt) % 5)

    def generate(self, prompts, **kw):
        self.calls += 1
        self.prompts += len(prompts)
        self.stops.append(tuple(kw.get("stop", ())))
        return self.engine.generate(prompts, **kw)

    def __getattr__(self, name):
        return getattr(self.engine, name)
