"""A tiny rule-made node writer for `dlcot mcts teacher=synthetic` on the synthetic problems: a CPU stand-in for
the 72B node writers, so the whole Marco-o1 v2 chain (search → SFT → DPO → eval → report) runs in minutes.

It reads the assistant turn like a model would (the node asked for is the last opening tag) and writes that node:
a `thinking` node carries out the next arithmetic step of the problem, slipping by a few units with probability
`SLIP` (drawn from the sample key, so a tree is the same in any batch); an error carries into later steps until
a `thinking_from_scratch` starts over; an answer states the last value reached, which is right only when every
step was done without a slip. So its trees hold right and wrong paths of different lengths, like a real writer's.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence

from dlcot.data.synthetic_problems import SyntheticProblem, generate_problems
from dlcot.engines.base import Completion, prompt_keys
from dlcot.engines.scripted import ScriptedEngine

SLIP = 0.3
OPEN = re.compile(r"<([a-z_-]+)>")
STATED = re.compile(r"= (-?\d+)</thinking>")


class SyntheticNodeWriter(ScriptedEngine):
    name = "synthetic"

    def __init__(self, n: int, seed: int, *, min_steps: int, max_steps: int, max_operand: int,
                 tokenizer_name: str = "qwen2"):
        super().__init__(lambda prompt, sample: "", tokenizer_name=tokenizer_name)
        self.problems = {p.problem: p for p in generate_problems(n, seed, min_steps=min_steps, max_steps=max_steps,
                                                                 max_operand=max_operand)}

    def generate(self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 keys: Sequence[str] | None = None) -> list[list[Completion]]:
        keys = prompt_keys(prompts, keys)
        out = []
        for prompt, key in zip(prompts, keys, strict=True):
            samples = []
            for j in range(n):
                digest = hashlib.sha256(f"{seed}/{key}/{j}".encode()).digest()
                samples.append(self._complete(self.write(prompt, random.Random(digest)), max_new_tokens, stop))
            out.append(samples)
        return out

    def write(self, prompt: str, rng: random.Random) -> str:
        problem = next((p for text, p in self.problems.items() if text in prompt), None)
        if problem is None:
            return ""
        turn = prompt[prompt.index(problem.problem) + len(problem.problem):]
        kind = OPEN.findall(turn)[-1]
        since = turn.rsplit("<thinking_from_scratch>", 1)[-1]  # work since the last fresh start
        done = since.count("<thinking>") - (kind == "thinking")
        stated = STATED.findall(since)
        value = int(stated[-1]) if stated else None
        if kind == "thinking":
            return self._step(problem, done, value, rng)
        if kind == "answer":
            return f" \\boxed{{{value if value is not None else '?'}}}"
        if kind == "sub-task":
            return " " + "\n- ".join(f"{i + 1}. {s.label}" if i else s.label for i, s in enumerate(problem.steps))
        if kind == "double-check":
            left = len(problem.steps) - done
            return f" {done} steps done, {left} to go; the last value is {value}." if value is not None else \
                " Nothing computed yet."
        return " I will redo the computation carefully."

    @staticmethod
    def _step(problem: SyntheticProblem, done: int, value: int | None, rng: random.Random) -> str:
        if done >= len(problem.steps):
            return f" All steps are done; the result stays = {value}"
        step = problem.steps[done]
        carried = value - problem.steps[done - 1].result if value is not None and done else 0
        left = step.left + carried if step.kind == "combine" else step.left
        result = step.result + carried + (rng.choice((-3, -2, -1, 1, 2, 3)) if rng.random() < SLIP else 0)
        return f" {step.label}: {left} {step.op} {step.right} = {result}"
