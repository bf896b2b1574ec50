"""The one place that extracts final answers from text and checks them against gold.

Grading follows the field's convention (math-verify on the completion as open-r1 / lighteval use it, the
Qwen2.5-Math and SkyThought evaluators), so dlcot's accuracies compare with papers and leaderboards:

1. the part after the thought (`</think>`, `<|end_of_thought|>`) is read first, then the thought; a thought that
   never closed is read the same way;
2. within a part, the last closed `\\boxed{...}` wins (nested braces matched, an unclosed box ignored);
3. else the last explicit marker: "the (final) answer is X", "Answer: X", "**Final Answer**" then a value,
   GSM8K's `#### N`, the key-factors paper's `The answer is N` with its multiple-choice `(B)` and yes/no forms;
4. else (`grading="convention"` only) the answer *stated at the end*: the last sentence that states a value
   ("The height is 5 cm.", "…is indeed 284. I think that's the final answer.", "so 5 students …", "three
   boxes"), after skipping short closing remarks; a part cut mid-sentence or ending in doubt ("Wait, …") states
   none. A marker or statement that only recalls or rejects a value ("I recall the answer is 1/2, but …") is
   not taken; a later statement beats an earlier marker.
`grading="strict"` keeps rules 1-3 (an explicit final-answer marker only). The prose reading is
`dlcot.answer_prose`; extraction is linear in the text (one pass for boxes, statements read from the tail).

Checking (`AnswerChecker`) runs math-verify with gold first, both sides wrapped in `\\boxed{}`, in worker processes
under a *CPU-time* budget per side (`ITIMER_PROF`), so a verdict does not depend on how loaded the machine is:
a pair that exhausts its budget is `undecided` (never a wrong-answer label, never cached, retried on the next
call), and gold is parsed once per worker. A parent-side wall-clock deadline only catches a worker hung outside
Python; such a pair is retried once in a fresh pool before it is reported `undecided`.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import re
import signal
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

from dlcot.answer_exact import exact_verdict
from dlcot.answer_prose import clean_value, is_rejection, stated_at_end

THOUGHT_ENDS = ("</think>", "<|end_of_thought|>")
THOUGHT_STARTS = ("<think>", "<|begin_of_thought|>")
_SOLUTION_TAGS = re.compile(r"<\|(?:begin|end)_of_solution\|>")
_BOX_TOKENS = re.compile(r"\\(?:boxed|fbox)\s*(\{)?|[{}]")
# A marker's prefix, and its value up to the end of the sentence ("7.The answer is 2": a period before a capital
# ends it too). Values are read from each prefix, so "the answer is 13 is incorrect, the correct answer is 68"
# has two markers, the last one usable.
_ANSWER_IS = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*", re.IGNORECASE)
_UNTIL_END = re.compile(r"(.+?)(?:\.\s*$|\.\s+|\.(?=[A-Z])|\n|$)")
_FINAL_HEADER = re.compile(r"final answer\s*\**\s*:?\s*\**\s*\n+\s*(\S[^\n]*)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*([^\n]+)")
# Adverbs between "the answer is" and the answer itself ("the answer is clearly 6").
_HEDGES = re.compile(r"^(?:clearly|simply|just|indeed|then|now|probably|likely|definitely|actually)\s+", re.I)
# Words that follow "the answer is" when a trace judges rather than states an answer.
_JUDGEMENTS = {"correct", "right", "wrong", "incorrect", "consistent", "valid", "indeed", "that", "not", "the"}
_CHOICE = re.compile(r"^\(?([A-J])\)?(?=$|[\s.:),])")
_YES_NO = re.compile(r"^(yes|no)\b\W*$", re.IGNORECASE)
# A percent sign and ordinal or unit text after a value are dropped before comparing, as the Qwen2.5-Math
# evaluator does ("10\\%" vs gold 10, "12^{\\text{th}}\\text{ grade}" vs gold 12).
_PERCENT = re.compile(r"\\?%$")
_ORDINAL = re.compile(r"\^\{?(?:\\text\{)?(?:st|nd|rd|th)\}?\}?")
_UNIT_TEXT = re.compile(r"^(.*?[\d}])\s*(?:\\[,;!: ]\s*)*\\(?:text|mbox|mathrm)\{\s*[A-Za-z][A-Za-z\s.]*\}$")
_DOLLARS = re.compile(r"^\$+|\$+$")

log = logging.getLogger(__name__)
T = TypeVar("T")
Reason = Literal["match", "mismatch", "no_answer", "undecided", "unparsable_gold"]
Grading = Literal["convention", "strict"]
Kind = Literal["boxed", "marker", "prose"]
GRADINGS = ("convention", "strict")


def split_thought(text: str) -> tuple[str, str]:
    """(thought, after): the text before and after the last thought-closing tag; ("", text) without one."""
    best = -1
    tag_len = 0
    for tag in THOUGHT_ENDS:
        i = text.rfind(tag)
        if i > best:
            best, tag_len = i, len(tag)
    if best < 0:
        return "", text
    return text[:best], text[best + tag_len:]


def _last_box_span(text: str) -> tuple[int, int] | None:
    """(start, end) of the last closed box's content, in one pass: a stack of open braces, each remembering
    whether a box opened it, so an unclosed `\\boxed{` costs O(1) however many follow (linear, not quadratic)."""
    stack: list[bool] = []
    best: tuple[int, int, int] | None = None  # (box position, content start, content end)
    opened: list[tuple[int, int]] = []  # (box position, content start) of the open boxes, parallel to True items
    for m in _BOX_TOKENS.finditer(text):
        tok = m.group(0)
        if tok == "{":
            stack.append(False)
        elif tok == "}":
            if stack and stack.pop():
                pos, start = opened.pop()
                if best is None or pos > best[0]:
                    best = (pos, start, m.start())
        elif m.group(1):  # \boxed{
            stack.append(True)
            opened.append((m.start(), m.end()))
        else:  # `\boxed 5`
            tail = re.match(r"[^\s$]+", text[m.end():m.end() + 200])
            if tail and (best is None or m.start() > best[0]):
                best = (m.start(), m.end(), m.end() + tail.end())
    return None if best is None else (best[1], best[2])


def last_boxed(text: str) -> str | None:
    """Content of the last closed `\\boxed{...}` / `\\fbox{...}` (nested braces matched), or `\\boxed 5`."""
    span = _last_box_span(text)
    if span is None:
        return None
    value = text[span[0]:span[1]].strip()
    return value or None


@dataclass(frozen=True)
class Answer:
    """An extracted final answer: its value, how it was marked, and which part of the output stated it."""
    value: str
    kind: Kind  # boxed | marker (an explicit final-answer phrase) | prose (stated at the end, unmarked)
    part: Literal["response", "thought"]


def _marker_value(said: str) -> str | None:
    ans = _HEDGES.sub("", _DOLLARS.sub("", said.strip()).strip())
    if not ans:
        return None
    if (yn := _YES_NO.match(ans)) is not None:
        return yn.group(1).lower()
    if (choice := _CHOICE.match(ans)) is not None:
        return choice.group(1)
    if ans.split()[0].lower().strip(",.!") in _JUDGEMENTS | {"yes", "no"}:
        return None
    # a value, or a short non-numeric answer as written ("east", "\\text{Evelyn}", "x+y"), never a sentence
    return clean_value(ans) or (ans if len(ans.split()) <= 3 and not re.search(r"\d", ans) else None)


def _last_marker(part: str) -> tuple[int, str] | None:
    """(position, value) of the last explicit final-answer marker that does not recall or reject its value."""
    found: list[tuple[int, str]] = []
    for rx in (_ANSWER_IS, _FINAL_HEADER, _HASHES):
        # the last usable one of each form, among its last 64 (a repetition loop repeats them thousands of times)
        for m in list(rx.finditer(part))[-64:][::-1]:
            # a bounded window: a stuck "The answer is The answer is …" line stays linear
            said = _UNTIL_END.match(part, m.end(), m.end() + 400) if rx is _ANSWER_IS else m
            if said is None:
                continue
            lo = max(0, m.start() - 300)  # a bounded look back: many markers in a long line stay linear
            start = max(part.rfind("\n", lo, m.start()), part.rfind(". ", lo, m.start()), lo - 1) + 1
            if is_rejection(part[start:m.start()], part[said.end(1):said.end(1) + 80]) or is_rejection(
                    "", said.group(1)):
                continue
            value = said.group(1).strip().replace(",", "") if rx is _HASHES else _marker_value(said.group(1))
            if value:
                found.append((m.start(), value))
                break
    return max(found) if found else None


_BARE_MAX = 40  # longest output read whole as a bare value ("19", "x = 3", "\\frac{1}{2}"): one line, no words
_BARE = re.compile(r"(?:[A-Za-z]\s*=\s*)?[^A-Za-z\n]+")  # matched after LaTeX command names are removed
_LATEX_NAME = re.compile(r"\\[A-Za-z]+")


def _find_in(part: str, grading: Grading) -> tuple[str, Kind] | None:
    boxed = last_boxed(part)
    if boxed:
        return boxed, "boxed"
    marker = _last_marker(part)
    if grading == "convention":
        whole = part.strip()
        if (marker is None and len(whole) <= _BARE_MAX and _BARE.fullmatch(_LATEX_NAME.sub("", whole))
                and (value := clean_value(whole))):
            return value, "prose"  # the whole output is the value: the answer-only baseline's target format
        prose = stated_at_end(part)
        if prose and (marker is None or prose[0] > marker[0]):
            return prose[1], "prose"
    return (marker[1], "marker") if marker else None


def find_answer(text: str | None, grading: Grading = "convention") -> Answer | None:
    """The final answer an output states (see the module docstring for the rules), or None (answerless)."""
    if not text:
        return None
    if grading not in GRADINGS:
        raise ValueError(f"grading must be one of {GRADINGS}, got {grading!r}")
    text = _SOLUTION_TAGS.sub("", text)
    thought, after = split_thought(text)
    parts: list[tuple[Literal["response", "thought"], str]] = [("response", after), ("thought", thought)]
    if not thought and any(t in after for t in THOUGHT_STARTS):
        parts = [("thought", after)]  # the thought never closed: the same rules on its end
    for where, part in parts:
        if part.strip() and (found := _find_in(part, grading)):
            return Answer(found[0], found[1], where)
    return None


def extract_answer(text: str | None, grading: Grading = "convention") -> str | None:
    """The final answer a response states, or None when it states none (an "answerless" response)."""
    found = find_answer(text, grading)
    return found.value if found else None


def normalize_gold(raw: str) -> str:
    """Gold answers as stored by benchmarks: GSM8K's `... #### 72` → `72`; `$\\boxed{x}$` → `x`."""
    raw = raw.strip()
    if "####" in raw:
        return raw.rsplit("####", 1)[1].strip().replace(",", "")
    boxed = last_boxed(raw)
    if boxed is not None and raw.startswith(("\\boxed", "$\\boxed")):
        return boxed
    return _DOLLARS.sub("", raw).strip()


# ------------------------------------------------------------------------------------------------ checking
@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: Reason
    extracted: str | None = None
    kind: Kind | None = None


class _OutOfBudget(BaseException):
    """Raised by SIGPROF in a worker; a BaseException so math-verify's `except Exception` cannot swallow it."""


def _out_of_budget(signum: int, frame: object) -> None:
    raise _OutOfBudget


_GOLD: dict[str, list] = {}  # parsed gold, per worker process: each gold is parsed once


def _budgeted(cpu_s: float, fn: Callable[[], T]) -> T:
    signal.setitimer(signal.ITIMER_PROF, cpu_s)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def _warm_worker() -> None:
    """Pay math-verify's first-call costs (imports, grammar building) before any budget runs, so the first pair a
    worker checks gets the same CPU budget as every other one."""
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its "timeout is disabled" notice
    signal.signal(signal.SIGPROF, _out_of_budget)
    verify(parse("\\boxed{\\frac{1}{2}}", parsing_timeout=None), parse("\\boxed{x^2+1}", parsing_timeout=None),
           timeout_seconds=None)


def _verify_worker(gold: str, pred: str, cpu_s: float) -> tuple[bool, Reason]:
    """Runs in a worker process. math-verify's own alarm-based timeouts (whole seconds of wall clock) are off;
    each side gets `cpu_s` seconds of this process's CPU time instead, which load does not change."""
    from math_verify import parse, verify

    try:
        if gold not in _GOLD:
            _GOLD[gold] = _budgeted(cpu_s, lambda: parse("\\boxed{" + gold + "}", parsing_timeout=None))
        if not _GOLD[gold]:
            return False, "unparsable_gold"
        p = _budgeted(cpu_s, lambda: parse("\\boxed{" + pred + "}", parsing_timeout=None))
        ok = bool(p) and bool(_budgeted(cpu_s, lambda: verify(_GOLD[gold], p, timeout_seconds=None)))
    except _OutOfBudget:
        return False, "undecided"
    return ok, "match" if ok else "mismatch"


def _canon(s: str) -> str:
    return re.sub(r"\s+", "", s).strip("$").rstrip(".").strip("$")


def comparable(value: str) -> str:
    """A value as compared: without a trailing percent sign, an ordinal suffix, or unit text after a number."""
    value = _PERCENT.sub("", _ORDINAL.sub("", value.strip())).strip()
    unit = _UNIT_TEXT.match(value)
    return unit.group(1) if unit else value


def _word(s: str) -> str:
    """`\\text{(C)}` / `(C)` / `C` → `C`: how letters and yes/no are written."""
    return re.sub(r"^\\text\{([^{}]*)\}$", r"\1", s).strip("()")


def _quick(gold: str, pred: str) -> tuple[bool, Reason] | None:
    """Pairs decided without math-verify: equal strings, plain numbers, letters and yes/no (case-insensitive)."""
    g, p = _canon(gold), _canon(pred)
    if g == p and g:
        return True, "match"
    if (exact := exact_verdict(g, p)) is not None:  # numbers and fractions, exactly (answer_exact.py)
        return (True, "match") if exact else (False, "mismatch")
    g_word, p_word = _word(g), _word(p)
    if g_word.lower() in ("yes", "no"):
        return (True, "match") if p_word.lower() == g_word.lower() else (False, "mismatch")
    if re.fullmatch(r"[A-J]", g_word):
        return (True, "match") if p_word == g_word else (False, "mismatch")
    return None


class AnswerChecker:
    """Checks (gold, predicted answer) pairs with math-verify in a process pool, with budgets and a cache.

    `workers` processes are started lazily on the first pair that needs math-verify. `timeout_s` is the CPU-time
    budget of each side of a check; `wall_timeout_s` (default 30 s + 10 x that) is the parent's last resort
    against a hung worker. Use as a context manager or call `close()`.
    """

    def __init__(self, workers: int = 1, timeout_s: float = 5.0, cache_size: int = 200_000,
                 wall_timeout_s: float | None = None):
        self.workers = max(1, workers)
        self.timeout_s = timeout_s
        self.wall_timeout_s = 30.0 + 10 * timeout_s if wall_timeout_s is None else wall_timeout_s
        self._cache: OrderedDict[tuple[str, str], tuple[bool, Reason]] = OrderedDict()
        self._cache_size = cache_size
        self._pool: mp.pool.Pool | None = None
        self.n_undecided = 0

    # -- pool
    def _get_pool(self) -> mp.pool.Pool:
        if self._pool is None:
            self._pool = mp.get_context("fork").Pool(self.workers, initializer=_warm_worker)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> AnswerChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checking
    def _remember(self, key: tuple[str, str], value: tuple[bool, Reason]) -> None:
        if value[1] == "undecided":
            self.n_undecided += 1
            return  # not a label: the next call tries again
        self._cache[key] = value
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _run(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[bool, Reason]]:
        """Verdicts for `keys` from the pool; pairs whose worker hung past the wall deadline are left out."""
        done: dict[tuple[str, str], tuple[bool, Reason]] = {}
        pending = keys
        while pending:
            pool = self._get_pool()
            jobs = [(key, pool.apply_async(_verify_worker, (*key, self.timeout_s))) for key in pending]
            pending = []
            for idx, (key, job) in enumerate(jobs):
                try:
                    done[key] = job.get(timeout=self.wall_timeout_s)
                except mp.TimeoutError:
                    # A hung worker cannot be interrupted alone: replace the pool, resubmit the rest.
                    self.close()
                    pending = [k for k, _ in jobs[idx + 1:]]
                    break
                except Exception as err:  # math-verify raised on odd input: a wrong answer, not a crash
                    log.debug("math-verify failed on %r vs %r: %s", *key, err)
                    done[key] = (False, "mismatch")
        return done

    def verify_many(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[bool, Reason]]:
        """Verdicts for (gold, predicted answer string) pairs, in order."""
        pairs = [(comparable(g), comparable(p)) for g, p in pairs]
        out: dict[tuple[str, str], tuple[bool, Reason]] = {}
        todo: dict[tuple[str, str], None] = {}
        for key in pairs:
            if key in self._cache:
                self._cache.move_to_end(key)
                out[key] = self._cache[key]
            elif (quick := _quick(*key)) is not None:
                out[key] = quick
                self._remember(key, quick)
            else:
                todo[key] = None
        done = self._run(list(todo))
        for key in todo:
            if key not in done:  # hung past the wall deadline: once more, alone, in a fresh pool
                done.update(self._run([key]))
            out[key] = done.get(key, (False, "undecided"))
            self._remember(key, out[key])
        return [out[key] for key in pairs]

    def check(self, gold: str, text: str | None, grading: Grading = "convention") -> Verdict:
        """Extract the answer from a full response/segment and check it against gold."""
        return self.check_many([(gold, text)], grading)[0]

    def check_many(self, items: Iterable[tuple[str, str | None]], grading: Grading = "convention") -> list[Verdict]:
        items = list(items)
        found = [find_answer(text, grading) for _, text in items]
        verdicts = self.check_answers([(g, a.value if a else None) for (g, _), a in zip(items, found, strict=True)])
        return [Verdict(v.correct, v.reason, v.extracted, a.kind if a else None)
                for v, a in zip(verdicts, found, strict=True)]

    def check_answers(self, items: Iterable[tuple[str, str | None]]) -> list[Verdict]:
        """Check already-extracted answers (None = no answer) against gold."""
        items = list(items)
        to_verify = [(g, a) for g, a in items if a is not None]
        results = iter(self.verify_many(to_verify))
        out = []
        for _, ans in items:
            if ans is None:
                out.append(Verdict(False, "no_answer", None))
            else:
                ok, reason = next(results)
                out.append(Verdict(ok, reason, ans))
        return out
