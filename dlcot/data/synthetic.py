"""A synthetic long-CoT teacher for the synthetic word problems (`synthetic_problems.py`): the project's embedded
default data.

Why it exists: every stage (segment, enhance, train, eval, `make demo`) must run offline on CPU in seconds, and the
DLCoT segmenter/clusterer can only be scored where the true structure of a trace is known. Real R1/QwQ traces are
scarce and hand-annotated (`../shared/data/gold/`); here the structure is known *by construction*: the teacher
appends paragraphs and records offsets as it goes, so the segmentation (docs/architecture.md section 5) is exact.

What a trace looks like: restatement -> optional understanding -> approaches (abandoned = incomplete, an uncaught
arithmetic slip = incorrect, a "Wait, ..." slip fixed inside the same approach) up to the first stated answer ->
verification checks (re-check, same-method re-derivation, plug back, sanity, reread) and sometimes a redundant
re-derivation by another method (a new approach, per the format) -> conclusion ending "the answer is \\boxed{N}.".

Methods: "forward" (one line per step), "expression" (one expression, evaluated round by round) and "equation"
(unknown x, undo the events in reverse). A method always writes the same equations for the same numbers, so a
restart or a same-method re-check shares math tokens with the original and a different method does not; the
approach clusterer relies on that.

Determinism: every random choice comes from `random.Random(f"...:{seed}:{index or id}")` (string seeds are hashed
with SHA-512, independent of PYTHONHASHSEED), never the global RNG; problem i does not depend on n.

Tiny-model mode: `generate_problems(n, seed, **EASY_PROBLEMS)` (1-2 steps, numbers <= 20) gives problems a tiny
transformer trained for a few CPU minutes can partly learn.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from fractions import Fraction

from dlcot.data import synthetic_text as phrases
from dlcot.data.synthetic_methods import INVERSE, Solver, num
from dlcot.data.synthetic_problems import APPLY, SyntheticProblem, generate_problems


@dataclass(frozen=True)
class TeacherStyle:
    """Knobs of the synthetic teacher. Each exploration approach before the first answer is abandoned with
    p_abandon, ends in an uncaught slip (incorrect) with p_slip, else it is the final one (at most
    max_failed_approaches failures). p_wrong_final makes the final one wrong too, so the trace's answer is wrong."""

    p_understanding: float = 0.7
    p_abandon: float = 0.15
    p_slip: float = 0.2
    p_self_correct: float = 0.15  # a "Wait, 7 * 8 is 56, not 54." fix inside a completed approach
    p_check_after_slip: float = 0.4  # an incorrect approach is followed by a check that finds the slip
    p_restart: float = 0.3  # the next approach after a failure reuses the same method
    p_interrupt: float = 0.1  # an approach is cut by a one-step check and resumed (keeps its number)
    n_checks: tuple[int, int] = (1, 3)  # verification checks after the first answer, inclusive range
    p_redundant: float = 0.3  # a redundant re-derivation by another method after the first answer
    p_wrong_final: float = 0.1
    max_failed_approaches: int = 3
    verbosity: float = 0.5  # chance of optional sentences: quoting the problem, plans, fillers

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_checks", tuple(self.n_checks))  # a YAML list from teacher.style works too
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith(("p_", "verbosity")) and not 0.0 <= value <= 1.0:
                raise ValueError(f"TeacherStyle.{f.name}={value}: must be a probability in [0, 1]")
        if self.p_abandon + self.p_slip > 1.0:
            raise ValueError(f"TeacherStyle: p_abandon + p_slip = {self.p_abandon + self.p_slip} > 1; lower one")
        lo, hi = self.n_checks
        if not 0 <= lo <= hi:
            raise ValueError(f"TeacherStyle.n_checks={self.n_checks}: need 0 <= min <= max")
        if self.max_failed_approaches < 0:
            raise ValueError("TeacherStyle.max_failed_approaches must be >= 0")


@dataclass
class SyntheticTrace:
    """A teacher trace plus its true segmentation (docs/architecture.md section 5)."""

    id: str
    problem: str
    reasoning: str
    response: str
    gold_answer: str
    final_answer: str
    segmentation: dict = field(repr=False)
    teacher: str = "synthetic-qwen"
    source: str = "dlcot.synthetic"

    @property
    def is_correct(self) -> bool:
        return self.final_answer == self.gold_answer

    def to_trace_record(self) -> dict:
        """The trace-JSONL line (docs/architecture.md section 4)."""
        return {"id": self.id, "problem": self.problem, "reasoning": self.reasoning, "response": self.response,
                "gold_answer": self.gold_answer, "teacher": self.teacher, "source": self.source}

    def to_segmentation(self) -> dict:
        """The true segmentation, one line of the gold format (plus a free-text `note` per span, as gold has)."""
        return {**self.segmentation, "segments": [dict(s) for s in self.segmentation["segments"]]}


# ---- the synthetic teacher -------------------------------------------------------------------------------------
class _Builder:
    """Appends paragraphs ("\\n\\n" after each, as in real traces) and records segment spans as it goes; a span
    owns the separator after its last paragraph, so span i ends where span i+1 starts."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.segments: list[dict] = []
        self.first_answer_end: int | None = None

    def add(self, kind: str, paragraphs: list[str], *, approach: int | None = None, answer: str | None = None,
            outcome: str | None = None, note: str = "", answer_at: tuple[int, int] | None = None) -> None:
        start = self.pos
        for k, para in enumerate(paragraphs):
            if answer_at and answer_at[0] == k and self.first_answer_end is None:
                self.first_answer_end = self.pos + answer_at[1]
            self.parts.append(para + "\n\n")
            self.pos += len(para) + 2
        self.segments.append({"kind": kind, "start": start, "end": self.pos, "approach": approach,
                              "answer": answer, "outcome": outcome, "note": note})

    def finish(self) -> str:
        self.parts[-1] = self.parts[-1][:-2]
        self.pos -= 2
        self.segments[-1]["end"] = self.pos
        return "".join(self.parts)


class _Teacher:
    """Writes one trace top to bottom, choosing every move from its own RNG and recording each span as it goes."""

    def __init__(self, pb: SyntheticProblem, style: TeacherStyle, rng: random.Random) -> None:
        self.pb, self.style, self.rng = pb, style, rng
        self.solver = Solver(pb, rng)
        self.b = _Builder()
        self.approach_no = 0

    def pick(self, table: tuple[str, ...], **kw: object) -> str:
        return self.rng.choice(table).format(**kw)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def approach(self, method: str, mode: str, opening: str, note: str = "") -> tuple[str | None, list[Fraction]]:
        """Writes one approach; mode is "abandon", "slip" (uncaught, incorrect) or "correct". Returns the answer it
        states (None when abandoned) and the values it used."""
        self.approach_no += 1
        s, rng, notes = self.solver, self.rng, [f"method={method}"] + ([note] if note else [])
        vals, bad = s.true, set()
        if mode == "slip":
            slip, vals = s.choose_slip()
            bad.add(slip)
            notes.append(f"uncaught slip at step {slip + 1}")
        events = s.render(method, vals)
        if mode == "correct" and self.chance(self.style.p_self_correct):
            fix, wrong = s.choose_slip()
            e = next(k for k, ev in enumerate(events) if fix in ev[1])
            wait = self.pick(phrases.SELF_FIX, eq=s.eq(fix, wrong, False), true=num(vals[fix]), wrong=num(wrong[fix]))
            events = s.render(method, wrong)[: e + 1] + [(f"{wait} {events[e][0]}", events[e][1])] + events[e + 1:]
            bad.add(fix)
            notes.append(f"self-corrected slip at step {fix + 1}")
        if mode == "abandon":
            events = events[: rng.randint(1, max(1, len(events) - 1))]
        paras = [f"{opening} {self.pick(phrases.METHOD_INTRO[method])}".strip()]
        for text, _ in events:
            paras.append(text + (f" {self.pick(phrases.FILLERS)}" if self.chance(self.style.verbosity * 0.3) else ""))
        if mode == "abandon":
            self.b.add("approach", paras + [self.pick(phrases.ABANDON)], approach=self.approach_no,
                       outcome="incomplete", note="; ".join(notes + ["abandoned"]))
            return None, vals
        answer, template = num(vals[-1]), rng.choice(phrases.ANSWER)
        outcome = "correct" if answer == self.pb.gold_answer else "incorrect"
        # an interruption: cut before body paragraph k (2..len(events)) after checking a step of the one before
        cuts = [(k, i) for k in range(2, len(events) + 1) for i in events[k - 2][1] if i not in bad]
        if cuts and self.chance(self.style.p_interrupt):
            k, step = rng.choice(cuts)
            self.b.add("approach", paras[:k], approach=self.approach_no, outcome=outcome, note="; ".join(notes))
            self.b.add("verification", [self.pick(phrases.INTERRUPT, eq=s.eq(step, vals))],
                       note="mid-approach step check")
            paras = [f"{self.pick(phrases.RESUME)} {paras[k]}"] + paras[k + 1:]
            notes.append("resumed after a check")
        paras.append(template.format(ans=answer))
        self.b.add("approach", paras, approach=self.approach_no, answer=answer, outcome=outcome,
                   note="; ".join(notes), answer_at=(len(paras) - 1, template.index("{ans}") + len(answer)))
        return answer, vals

    def check(self, kind: str, answer: str | None, method: str, vals: list[Fraction]) -> None:
        """One verification segment confirming `answer` (the values are the ones the final approach used, so a
        wrong-final trace re-checks its own slip and misses it, as real teachers do)."""
        s, ans = self.solver, answer
        if kind == "recheck":
            lines = "\n".join(s.eq(i, vals) for i in range(len(vals)))
            paras = [f"{self.pick(phrases.RECHECK)}\n{lines}", self.pick(phrases.RECHECK_OK, ans=ans)]
        elif kind == "rederive":
            paras = [self.pick(phrases.REDERIVE)] + [text for text, _ in s.render(method, vals)]
            paras.append(self.pick(phrases.REDERIVE_OK, ans=ans))
        elif kind == "plugback":
            cur, lines = vals[-1], []
            for i in reversed(s.combine):
                ref = s.refs[i][1]
                operand = vals[ref[1]] if ref[0] == "s" else Fraction(ref[1])
                op = INVERSE[self.pb.steps[i].op]
                lines.append(f"{num(cur)} {op} {num(operand)} = {num(APPLY[op](cur, operand))}")
                cur = APPLY[op](cur, operand)
            paras = [self.pick(phrases.PLUGBACK, ans=ans) + " " + ", ".join(lines) + ".",
                     self.pick(phrases.PLUGBACK_OK, start=num(cur), ans=ans)]
        else:
            paras = [self.pick(phrases.SANITY if kind == "sanity" else phrases.REREAD, ans=ans, target=self.pb.target)]
        self.b.add("verification", paras, answer=ans, note=kind)

    def write(self, trace_id: str) -> SyntheticTrace:
        st, rng, pb, s = self.style, self.rng, self.pb, self.solver
        restate = [self.pick(phrases.RESTATE, target=pb.target)]
        if self.chance(st.verbosity):
            restate.append(self.pick(phrases.RESTATE_MORE, problem=pb.problem))
        self.b.add("restatement", [" ".join(restate + [self.pick(phrases.RESTATE_END)])])
        if self.chance(st.p_understanding):
            labels = [step.label for step in pb.steps]
            listed = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
            para = self.pick(phrases.UNDERSTAND, labels=listed)
            self.b.add("understanding", [para + (f" {self.pick(phrases.PLAN)}" if self.chance(st.verbosity) else "")])
        wrong_final = self.chance(st.p_wrong_final)
        method = rng.choices(s.methods, weights=(5, 3, 2)[: len(s.methods)])[0]
        opening, note, failures = "", "", 0
        while True:  # exploration: failed approaches until the final one (correct, or wrong when wrong_final)
            r = rng.random()
            can_fail = failures < st.max_failed_approaches
            failure = ("abandon" if can_fail and r < st.p_abandon else
                       "slip" if can_fail and r < st.p_abandon + st.p_slip else None)
            mode = failure or ("slip" if wrong_final else "correct")
            answer, vals = self.approach(method, mode, opening, note)
            if failure is None:
                break
            failures += 1
            others = [m for m in s.methods if m != method]
            same = not others or self.chance(st.p_restart)
            opening, note = (self.pick(phrases.RESTART), "restart") if same else (self.pick(phrases.SWITCH), "")
            if failure == "abandon":
                opening = opening if same else self.pick(phrases.AFTER_ABANDON)
            elif self.chance(st.p_check_after_slip):
                i = next(i for i in range(len(vals)) if vals[i] != s.true[i])
                detect = self.pick(phrases.DETECT, eq=s.eq(i, vals, False), true=num(s.true[i]), wrong=num(vals[i]),
                                   bad=answer)
                self.b.add("verification", [detect], note="detects the slip")
            else:
                opening = f"{self.pick(phrases.AFTER_WRONG, wrong=answer)} {opening}"
            method = method if same else rng.choice(others)
        kinds = ["recheck", "rederive", "sanity", "reread"] + ["plugback"] * bool(s.combine and not wrong_final)
        n_checks = rng.randint(*st.n_checks)
        others = [m for m in s.methods if m != method]
        redundant_at = rng.randint(0, n_checks) if others and not wrong_final and self.chance(st.p_redundant) else -1
        kinds = rng.sample(kinds, k=len(kinds)) * (n_checks // len(kinds) + 1)  # vary the checks, repeat last
        for k in range(n_checks + 1):
            if k == redundant_at:
                self.approach(rng.choice(others), "correct", self.pick(phrases.REDUNDANT), "redundant re-derivation")
            if k < n_checks:
                self.check(kinds[k], answer, method, vals)
        self.b.add("conclusion", [self.pick(phrases.CONCLUDE, ans=answer)])
        reasoning = self.b.finish()
        lines = [f"{k + 1}. {st.label[0].upper()}{st.label[1:]}: {s.eq(k, vals)}" for k, st in enumerate(pb.steps)]
        response = "\n".join(["Solution:", "", *lines, "", f"Therefore, the answer is \\boxed{{{answer}}}."])
        segmentation = {"id": trace_id, "n_chars": len(reasoning), "first_answer_end": self.b.first_answer_end,
                        "segments": self.b.segments}
        return SyntheticTrace(id=trace_id, problem=pb.problem, reasoning=reasoning, response=response,
                              gold_answer=pb.gold_answer, final_answer=str(answer), segmentation=segmentation)


def teach(problem: SyntheticProblem, seed: int, style: TeacherStyle | None = None, *, trace_id: str | None = None
          ) -> SyntheticTrace:
    """The synthetic teacher's long CoT for `problem` with its true segmentation; deterministic in
    (problem.id, seed, style). `trace_id` defaults to the problem id (pass another to sample several traces)."""
    rng = random.Random(f"dlcot.synthetic.teach:{seed}:{problem.id}:{trace_id or ''}")
    return _Teacher(problem, style or TeacherStyle(), rng).write(trace_id or problem.id)


def synthetic_traces(n: int, seed: int, style: TeacherStyle | None = None, **problem_kwargs: int
                     ) -> Iterator[SyntheticTrace]:
    """Traces for `generate_problems(n, seed, **problem_kwargs)`; prefix-stable in n like the problems."""
    for problem in generate_problems(n, seed, **problem_kwargs):
        yield teach(problem, seed, style)


def tokenizer_corpus(n: int = 200, seed: int = 0) -> list[str]:
    """Problems, thoughts and answers of the synthetic teacher as texts (`student.tiny.corpus: synthetic`): a tiny
    tokenizer trained on them spends ~3x fewer tokens per synthetic trace than one trained on the tiny builder's
    default corpus, which is what makes the CPU demo fit."""
    return [f"{t.problem}\n<think>\n{t.reasoning}\n</think>\n\n{t.response}" for t in synthetic_traces(n, seed)]
