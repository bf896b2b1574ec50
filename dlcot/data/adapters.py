"""Field adapters for the long-CoT datasets people distil from, so each is one word: `data=openthoughts`.

Each adapter maps one source row to traces (`problem, reasoning, response, gold_answer, teacher`), one trace per
generation where a row holds several, and a `Reject` with its reason for every generation it cannot use. The
schemas are those of the Hub dataset cards:

- `openr1` (open-r1/OpenR1-Math-220k): `problem, answer, uuid, generations[], correctness_math_verify[],
  correctness_llama[], is_reasoning_complete[], finish_reasons[]`; each generation is `<think>…</think>answer`.
  With `data.correct_only` a generation is kept when math-verify or the Llama judge marked it correct.
- `conversations` (OpenThoughts-114k, Bespoke-Stratos-17k, Sky-T1_data_17k): `system, conversations[{from,
  value}]`, the assistant turn `<|begin_of_thought|>…<|end_of_thought|><|begin_of_solution|>…<|end_of_solution|>`.
  These carry no separate gold (their makers kept only solutions checked against the reference), so the gold is
  the solution's final boxed answer; a row whose solution states none (code, proofs) is rejected `no_gold`.
- `deepseek_fields` (OpenThoughts-114k's `metadata` config, OpenThoughts-Unverified): `problem,
  deepseek_reasoning, deepseek_solution, ground_truth_solution, domain`: the gold comes from the reference
  solution's marked answer, not from the teacher's own.
- `s1k` (simplescaling/s1K-1.1): `question, solution, {gemini,deepseek}_thinking_trajectory, {…}_attempt`
  (+ optional `{…}_grade`): one trace per teacher in `data.teachers`; gold from `solution`.
- `limo` (GAIR/LIMO): `question, solution, answer`; the solution is the reasoning.
- `messages`: `messages[{role, content}]` with the assistant's thought in `<think>…</think>`; gold from an
  `answer` / `gold_answer` field, else the response's boxed answer.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dlcot.answers import extract_answer, last_boxed, normalize_gold, split_thought
from dlcot.records import Reject, Trace

_SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)(?:<\|end_of_solution\|>|$)", re.DOTALL)
_OPEN = re.compile(r"^\s*(?:<think>|<\|begin_of_thought\|>)")
_USER, _ASSISTANT = ("user", "human"), ("assistant", "gpt")


@dataclass(frozen=True)
class AdapterOptions:
    name: str  # the data config's name: the id prefix of rows without an id
    teacher: str | None = None  # teacher label for datasets with one teacher
    correct_only: bool = False  # openr1 / s1k: keep only generations flagged correct
    teachers: tuple[str, ...] = ("gemini", "deepseek")  # s1k: which trajectories to read


Adapter = Callable[[Mapping[str, Any], str, AdapterOptions], list[Trace | Reject]]


def _split(text: str) -> tuple[str, str | None] | None:
    """(reasoning, response) of a generation with a closed thought marker; None when the thought never closed."""
    thought, after = split_thought(text)
    if not thought:
        return None
    reasoning = _OPEN.sub("", thought).strip()
    solution = _SOLUTION.search(after)
    response = (solution.group(1) if solution else after).strip()
    return reasoning, response or None


def _gold_of(solution: str | None) -> str | None:
    """A short final answer from a reference solution: a short text as is, else its marked final answer."""
    if not solution or not solution.strip():
        return None
    if len(solution.strip()) <= 100 and "\\boxed" not in solution:
        return normalize_gold(solution)
    return extract_answer(solution, "strict")  # a boxed / "the answer is" / #### answer; a proof has none


def _text(row: Mapping[str, Any], key: str) -> str | None:
    value = row.get(key)
    if isinstance(value, list):  # s1K-1.1's first upload stored the DeepSeek fields as one-element lists
        value = value[0] if value else None
    return value if isinstance(value, str) and value.strip() else None


def openr1(row: Mapping[str, Any], rid: str, opts: AdapterOptions) -> list[Trace | Reject]:
    problem, gold, gens = _text(row, "problem"), _text(row, "answer"), row.get("generations")
    if not problem or not isinstance(gens, list) or not gens:
        return [Reject(rid, "missing_field", f"{rid}: needs `problem` and a non-empty `generations` list")]
    if not gold:
        return [Reject(rid, "no_gold", f"{rid}: field `answer` is empty")]
    out: list[Trace | Reject] = []
    for j, gen in enumerate(gens):
        gid = f"{rid}/{j}"
        flags = [f[j] for key in ("correctness_math_verify", "correctness_llama")
                 if isinstance(f := row.get(key), list) and j < len(f) and f[j] is not None]
        complete = row.get("is_reasoning_complete")
        if opts.correct_only and not flags:
            out.append(Reject(gid, "no_correctness_flags", f"{gid}: data.correct_only=true but generation {j} has "
                              "no correctness_math_verify / correctness_llama flag"))
        elif opts.correct_only and not any(flags):
            out.append(Reject(gid, "incorrect_generation", f"{gid}: flagged incorrect by math-verify and the judge"))
        elif isinstance(complete, list) and j < len(complete) and complete[j] is False:
            out.append(Reject(gid, "incomplete_reasoning", f"{gid}: is_reasoning_complete is false"))
        elif not isinstance(gen, str) or (parts := _split(gen)) is None:
            out.append(Reject(gid, "unclosed_thought", f"{gid}: generation {j} has no closed <think> block"))
        else:
            finish = row.get("finish_reasons")
            extra = {"correct": any(flags) if flags else None, "source": row.get("source"),
                     "finish_reason": finish[j] if isinstance(finish, list) and j < len(finish) else None}
            out.append(Trace(gid, problem, parts[0], normalize_gold(gold), parts[1], opts.teacher or "deepseek-r1",
                             opts.name, extra={k: v for k, v in extra.items() if v is not None}))
    return out


def conversations(row: Mapping[str, Any], rid: str, opts: AdapterOptions) -> list[Trace | Reject]:
    turns = row.get("conversations")
    if not isinstance(turns, list):
        return [Reject(rid, "missing_field", f"{rid}: field `conversations` missing or not a list")]
    user = next((t.get("value") for t in turns if isinstance(t, Mapping) and t.get("from") in _USER), None)
    bot = next((t.get("value") for t in turns if isinstance(t, Mapping) and t.get("from") in _ASSISTANT), None)
    if not isinstance(user, str) or not user.strip():
        return [Reject(rid, "no_user_turn", f"{rid}: the conversation has no user turn")]
    if not isinstance(bot, str) or not bot.strip():
        return [Reject(rid, "no_assistant_turn", f"{rid}: the conversation has no assistant turn")]
    parts = _split(bot)
    if parts is None:
        return [Reject(rid, "unclosed_thought", f"{rid}: the assistant turn has no closed thought marker")]
    gold = last_boxed(parts[1] or "")
    if not gold:
        return [Reject(rid, "no_gold", f"{rid}: the solution states no boxed answer to use as gold (code or proof)")]
    return [Trace(rid, user.strip(), parts[0], gold, parts[1], opts.teacher, opts.name,
                  extra={"gold_source": "response"})]


def deepseek_fields(row: Mapping[str, Any], rid: str, opts: AdapterOptions) -> list[Trace | Reject]:
    problem, reasoning = _text(row, "problem"), _text(row, "deepseek_reasoning")
    if not problem or not reasoning:
        return [Reject(rid, "missing_field", f"{rid}: needs `problem` and `deepseek_reasoning`")]
    gold = _gold_of(_text(row, "ground_truth_solution"))
    if not gold:
        return [Reject(rid, "no_gold", f"{rid}: `ground_truth_solution` states no final answer (domain "
                       f"{row.get('domain')!r}: code or proof)")]
    return [Trace(rid, problem, reasoning.strip(), gold, _text(row, "deepseek_solution"), opts.teacher or "deepseek-r1",
                  opts.name, extra={k: row[k] for k in ("domain", "source") if row.get(k)})]


def s1k(row: Mapping[str, Any], rid: str, opts: AdapterOptions) -> list[Trace | Reject]:
    question, gold = _text(row, "question"), _gold_of(_text(row, "solution"))
    if not question:
        return [Reject(rid, "missing_field", f"{rid}: field `question` is empty")]
    if not gold:
        return [Reject(rid, "no_gold", f"{rid}: `solution` has no short final answer (a proof?)")]
    out: list[Trace | Reject] = []
    for t in opts.teachers:
        tid, thinking, attempt = f"{rid}/{t}", _text(row, f"{t}_thinking_trajectory"), _text(row, f"{t}_attempt")
        grade = _text(row, f"{t}_grade")
        if not thinking:
            out.append(Reject(tid, "missing_field", f"{tid}: no `{t}_thinking_trajectory` in this row"))
        elif opts.correct_only and grade is None:
            out.append(Reject(tid, "no_correctness_flags", f"{tid}: data.correct_only=true but no `{t}_grade`"))
        elif opts.correct_only and grade.strip().lower() not in ("yes", "true", "correct"):
            out.append(Reject(tid, "incorrect_generation", f"{tid}: `{t}_grade` is {grade!r}"))
        else:
            out.append(Trace(tid, question, thinking.strip(), gold, attempt, t, opts.name,
                             extra={k: row[k] for k in ("cot_type", "source_type") if k in row}))
    return out


def limo(row: Mapping[str, Any], rid: str, opts: AdapterOptions) -> list[Trace | Reject]:
    question, solution, answer = _text(row, "question"), _text(row, "solution"), row.get("answer")
    if not question or not solution:
        return [Reject(rid, "missing_field", f"{rid}: needs `question` and `solution`")]
    if answer is None or not str(answer).strip():
        return [Reject(rid, "no_gold", f"{rid}: field `answer` is empty")]
    return [Trace(rid, question, solution.strip(), normalize_gold(str(answer)), None, opts.teacher, opts.name)]


def messages(row: Mapping[str, Any], rid: str, opts: AdapterOptions) -> list[Trace | Reject]:
    turns = row.get("messages")
    if not isinstance(turns, list):
        return [Reject(rid, "missing_field", f"{rid}: field `messages` missing or not a list")]
    user = next((t.get("content") for t in turns if isinstance(t, Mapping) and t.get("role") == "user"), None)
    bot = next((t.get("content") for t in turns if isinstance(t, Mapping) and t.get("role") == "assistant"), None)
    if not isinstance(user, str) or not user.strip():
        return [Reject(rid, "no_user_turn", f"{rid}: no user message")]
    if not isinstance(bot, str) or not bot.strip():
        return [Reject(rid, "no_assistant_turn", f"{rid}: no assistant message")]
    parts = _split(bot)
    if parts is None:
        return [Reject(rid, "unclosed_thought", f"{rid}: the assistant message has no closed <think> block")]
    stated = row.get("gold_answer", row.get("answer"))
    gold = normalize_gold(str(stated)) if stated is not None and str(stated).strip() else last_boxed(parts[1] or "")
    if not gold:
        return [Reject(rid, "no_gold", f"{rid}: no `answer` field and no boxed answer in the response")]
    teacher = opts.teacher or (row.get("teacher") if isinstance(row.get("teacher"), str) else None)
    return [Trace(rid, user.strip(), parts[0], gold, parts[1], teacher, opts.name)]


ADAPTERS: dict[str, Adapter] = {"openr1": openr1, "conversations": conversations, "deepseek_fields": deepseek_fields,
                                "s1k": s1k, "limo": limo, "messages": messages}


def adapt(rows: Iterator[tuple[str, Mapping[str, Any] | Reject]], fmt: str, opts: AdapterOptions
          ) -> Iterator[Trace | Reject]:
    """Traces and rejects of `(default id, row)` pairs (a row may already be a Reject: bad JSON). `fmt` is one
    of dlcot.schema.DataFormat (checked at composition), each a key here."""
    adapter = ADAPTERS[fmt]
    seen: set[str] = set()
    for default_id, row in rows:
        if isinstance(row, Reject):
            yield row
            continue
        rid = str(row.get("uuid") or row.get("id") or default_id)
        for rec in adapter(row, rid, opts):
            if isinstance(rec, Trace) and rec.id in seen:
                rec = Reject(rec.id, "duplicate_id", f"{rec.id}: id already seen")
            if isinstance(rec, Trace):
                seen.add(rec.id)
            yield rec


def options(data: Any) -> AdapterOptions:
    """Adapter options from a `data` config node."""
    teachers: Sequence[str] = tuple(data.teachers) if data.get("teachers") else AdapterOptions.teachers
    return AdapterOptions(name=data.name, teacher=data.get("teacher_name"), correct_only=bool(data.get("correct_only")),
                          teachers=tuple(teachers))
