"""A scripted MCTS node writer for tests: answers are right exactly when the path double-checks or reflects."""
from __future__ import annotations

import re

from dlcot.engines.scripted import ScriptedEngine
from dlcot.mcts.tree import ANSWER

NEXT = re.compile(r"Next \((?P<kind>[a-z ]+)\):")
CHECKED = ("Double-check:", "Reflection:")


class Oracle:
    """Writes node text by kind; an answer is the gold one iff a double-check or reflection is on the path (and
    never for problems listed in `unsolvable`). Counts engine calls and prompts; dies on a `fail_on` problem."""

    def __init__(self, problems, unsolvable=(), fail_on=()):
        self.gold = {p.problem: p.gold_answer for p in problems}
        self.unsolvable = {p.problem for p in problems if p.id in unsolvable}
        self.fail_on = {p.problem for p in problems if p.id in fail_on}
        self.calls, self.prompts, self.seen = 0, 0, []
        self.engine = ScriptedEngine(self.respond)

    def respond(self, prompt: str, sample: int) -> str:
        problem = next(p for p in self.gold if prompt.startswith(p))
        if problem in self.fail_on:
            raise RuntimeError("engine died")
        kind = NEXT.findall(prompt)[-1].replace(" ", "_")
        self.seen.append((kind, prompt))
        steps = prompt.split("Steps so far:", 1)[1]
        n = steps.count("\n\n")
        if kind == ANSWER:
            ok = any(c in steps for c in CHECKED) and problem not in self.unsolvable
            value = self.gold[problem] if ok else f"{self.gold[problem]}7"
            return f"So the final answer is \\boxed{{{value}}}."
        label = {"double_check": "Double-check:", "reflection": "Reflection:"}.get(kind, f"{kind}:")
        return f"{label} step {n} of the work" + " and more words" * (len(prompt) % 5)

    def generate(self, prompts, **kw):
        self.calls += 1
        self.prompts += len(prompts)
        return self.engine.generate(prompts, **kw)

    def __getattr__(self, name):
        return getattr(self.engine, name)
