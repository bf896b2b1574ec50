"""Synthetic multi-step integer word problems: the problems half of `dlcot.data.synthetic`.

A problem is told as a story: an opening amount (a number, or a product such as 3 bags of 4 marbles), then
events that change the running total (add, subtract, double, share out, buy several things at a price), then the
question. Each sentence records the arithmetic step it defines (`Step`), so the teacher (`synthetic.py`) and its
solution methods (`synthetic_methods.py`) know the true structure; this module imports neither of them.

Determinism: every random choice comes from `random.Random(f"dlcot.synthetic.problem:{seed}:{index}")` (string
seeds are hashed with SHA-512, independent of PYTHONHASHSEED), never the global RNG; problem i does not depend on n.
The order of the RNG draws is part of the data: changing it changes every problem (tests/unit/test_synthetic.py
pins the output).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

from dlcot.data import synthetic_text as phrases

EASY_PROBLEMS: dict[str, int] = {"min_steps": 1, "max_steps": 2, "max_operand": 20}
APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
_EVENT_OPS = {"add": "+", "sub": "-", "div": "/", "mul": "*", "add_product": "+", "sub_product": "-"}


@dataclass(frozen=True)
class Step:
    """One arithmetic step: `left op right = result`, both operands numbers. kind "start" and "quantity" compute
    an amount from two numbers in the text (3 bags of 4 marbles; "start" is the amount the story begins with);
    kind "combine" applies an event to the running total (its `left`: the start or the previous combine), with
    `right` a number from the text or the "quantity" step just before."""

    op: str
    left: int
    right: int
    result: int
    label: str
    kind: str


@dataclass(frozen=True)
class SyntheticProblem:
    """A multi-step integer word problem with its steps (`dlcot.records.Problem` is the stage record made from
    it); `difficulty` is the number of steps."""

    id: str
    problem: str
    gold_answer: str
    steps: tuple[Step, ...]
    difficulty: int
    scenario: str
    target: str  # "how many dollars Maya has left": what the teacher restates

    def to_record(self) -> dict:
        """The problems-JSONL line `dlcot generate` reads."""
        return {"id": self.id, "problem": self.problem, "gold_answer": self.gold_answer, "difficulty": self.difficulty}


def generate_problems(n: int, seed: int, *, min_steps: int = 2, max_steps: int = 4,
                      max_operand: int = 50) -> list[SyntheticProblem]:
    """n problems with min_steps..max_steps steps and every number in the text <= max_operand (products use
    factors <= 9 and <= 12). Ids are `synth/000000`...; problem i depends on (seed, i, knobs), never on n.
    `**EASY_PROBLEMS` (min_steps=1, max_steps=2, max_operand=20) is the setting a tiny CPU-trained model can learn."""
    if not 1 <= min_steps <= max_steps:
        raise ValueError(f"generate_problems: need 1 <= min_steps <= max_steps, got {min_steps}, {max_steps}")
    if max_operand < 5:
        raise ValueError(f"generate_problems: max_operand={max_operand} is too small; use >= 5")
    return [_make_problem(i, seed, min_steps, max_steps, max_operand) for i in range(n)]


def _make_problem(index: int, seed: int, min_steps: int, max_steps: int, top: int) -> SyntheticProblem:
    """Problem `index`: a story with `min_steps..max_steps` steps, then its question."""
    rng = random.Random(f"dlcot.synthetic.problem:{seed}:{index}")
    story = _Story(rng, top)
    budget = rng.randint(min_steps, max_steps)
    value, budget = story.opening(budget)
    last_kind = ""
    while budget > 0:
        kinds = story.possible_events(value, budget)
        if not kinds:  # every phrase of every event that fits is used: allow repeats
            story.used.clear()
            continue
        last_kind = rng.choice(kinds)
        value, budget = story.event(last_kind, value, budget)
    return story.problem(f"synth/{index:06d}", value, ask_count=last_kind == "div")


class _Story:
    """A problem being told: a scenario and a character, the sentences so far, the steps they define and the
    event phrases already used (each at most once per problem)."""

    def __init__(self, rng: random.Random, top: int) -> None:
        self.rng, self.top = rng, top
        self.scenario_name = rng.choice(sorted(phrases.SCENARIOS))
        self.scenario = phrases.SCENARIOS[self.scenario_name]
        name, gender = rng.choice(phrases.NAMES)
        pro, obj, pos = phrases.PRONOUNS[gender]
        self.ctx = {"name": name, "pro": pro, "Pro": pro.capitalize(), "obj": obj, "pos": pos,
                    "Pos": pos.capitalize(), "item": rng.choice(self.scenario.items)}
        shopping = phrases.SCENARIOS["shopping"].items
        self.things = rng.sample(shopping, k=len(shopping))  # what a product step buys, in turn
        self.max_count, self.max_per = min(9, top), min(12, top)
        self.sentences: list[str] = []
        self.steps: list[Step] = []
        self.used: set[tuple[str, ...]] = set()

    def fresh(self, kind: str) -> list[tuple[str, ...]]:
        """The scenario's phrases for event `kind` not used yet in this problem."""
        return [ph for ph in getattr(self.scenario, kind) if ph not in self.used]

    def say(self, phrase: tuple[str, ...], **numbers: int) -> tuple[str, ...]:
        """Tell `phrase`'s sentence with `numbers`; returns its step labels, filled the same way."""
        self.used.add(phrase)
        values = {**self.ctx, "thing": self.things[len(self.steps) % len(self.things)], **numbers}
        if "mul" in numbers:
            values.update(zip(("mul_verb", "mul_inf", "mul_adv"), phrases.MUL_WORDS[numbers["mul"]], strict=True))
        self.sentences.append(phrase[0].format(**values))
        return tuple(part.format(**values) for part in phrase[1:])

    def opening(self, budget: int) -> tuple[int, int]:
        """The amount the story starts with: a product (one step of the budget) or a plain number (none).
        Returns (amount, steps left)."""
        rng = self.rng
        if rng.random() < (0.5 if budget > 1 else 0.3):
            count, per = rng.randint(2, self.max_count), rng.randint(2, self.max_per)
            (label,) = self.say(rng.choice(self.scenario.start_product), count=count, per=per)
            self.steps.append(Step("*", count, per, count * per, label, "start"))
            return count * per, budget - 1
        value = rng.randint(max(2, self.top // 3), self.top)
        self.sentences.append(rng.choice(self.scenario.start).format(n=value, **self.ctx))
        return value, budget

    def _divisors(self, value: int) -> list[int]:
        return [d for d in range(2, self.max_per + 1) if value % d == 0 and value // d >= 2]

    def possible_events(self, value: int, budget: int) -> list[str]:
        """Event kinds that fit the running total and the steps left, weighted by repetition (a division, which
        only ends a story, twice); products take two steps."""
        fresh = self.fresh
        kinds = ["add"] * bool(fresh("add")) + ["sub"] * bool(fresh("sub") and value >= 2)
        kinds += ["mul"] * bool(fresh("mul")) + ["div"] * 2 * bool(fresh("div") and budget == 1
                                                                   and self._divisors(value))
        if budget >= 2:
            kinds += ["add_product"] * bool(fresh("add_product"))
            kinds += ["sub_product"] * bool(fresh("sub_product") and value >= 5)
        return kinds

    def event(self, kind: str, value: int, budget: int) -> tuple[int, int]:
        """Tell one event of `kind` applied to the running total `value`; returns (new total, steps left)."""
        rng = self.rng
        if kind.endswith("_product"):  # "buys 3 pens at 4 dollars each": a quantity step, then the combine
            pairs = [(c, p) for c in range(2, self.max_count + 1) for p in range(2, self.max_per + 1)
                     if kind == "add_product" or c * p < value]
            count, per = rng.choice(pairs)
            term, label = self.say(rng.choice(self.fresh(kind)), count=count, per=per)
            self.steps.append(Step("*", count, per, count * per, term, "quantity"))
            operand, budget = count * per, budget - 1
        elif kind == "mul":
            operand = rng.choice((2, 3))
            (label,) = self.say(rng.choice(self.fresh(kind)), mul=operand)
        else:
            operand = (rng.randint(2, self.top) if kind == "add" else
                       rng.randint(1, min(self.top, value - 1)) if kind == "sub" else rng.choice(self._divisors(value)))
            (label,) = self.say(rng.choice(self.fresh(kind)), n=operand)
        op = _EVENT_OPS[kind]
        result = int(APPLY[op](Fraction(value), operand))
        self.steps.append(Step(op, value, operand, result, label, "combine"))
        return result, budget - 1

    def problem(self, problem_id: str, answer: int, *, ask_count: bool) -> SyntheticProblem:
        """Close the story with its question (`ask_count`: after a division, how many groups) and build the
        problem."""
        question, target = self.scenario.question_div if ask_count else self.scenario.question
        self.sentences.append(question.format(**self.ctx))
        return SyntheticProblem(id=problem_id, problem=" ".join(self.sentences), gold_answer=str(answer),
                                steps=tuple(self.steps), difficulty=len(self.steps), scenario=self.scenario_name,
                                target=target.format(**self.ctx))
