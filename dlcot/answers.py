"""The one place that extracts final answers from text and checks them against gold.

Extraction prefers the text after the thought (`</think>`, `<|end_of_thought|>`) over the thought itself, and
within a part takes the last `\\boxed{...}` (nested braces matched; an unclosed box is ignored), then
"the (final) answer is X", then GSM8K's `#### N`. Checking uses math-verify with gold first and both sides
wrapped in `\\boxed{}` so its parser sees exactly the extracted strings.

math-verify's own timeouts use `signal.alarm`, which works only on a process's main thread; `AnswerChecker`
runs it in a pool of worker processes (where it is the main thread) and also enforces a hard wall-clock
deadline per call from the parent, replacing the pool when a worker hangs. Verdicts are cached by
(gold, prediction) because traces repeat the same candidate answers many times.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

THOUGHT_ENDS = ("</think>", "<|end_of_thought|>")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*(.+?)(?:\.\s*$|\.\s+|\n|$)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*([^\n]+)")
# "Therefore, the number of divisors is 9." as the last statement: a stated answer without a box.
_CONCLUDES = re.compile(
    r"(?:^|[.\n]\s*)(?:therefore|thus|hence|so)\b[^.\n]*?(?:\b(?:is|are|equals|be)\b|=)\s*:?\s*"
    r"\$*(?:\\\()?\s*(-?[\w.,/^{}\\+\-*()\[\]]+?)\s*(?:\\\))?\$*(?:\s+[A-Za-z]+)?\s*\.?\s*$", re.IGNORECASE)
# Adverbs between "the answer is" and the answer itself ("the answer is clearly 6").
_HEDGES = re.compile(r"^(?:clearly|simply|just|indeed|then|now|probably|likely|definitely|actually)\s+", re.I)
# Plain numbers (optionally with thousands commas) compare exactly without math-verify: the common case, and
# math-verify costs ~16 ms a pair.
_NUMBER = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
# Words that follow "the answer is" when a trace judges rather than states an answer.
_JUDGEMENTS = {"correct", "right", "wrong", "incorrect", "consistent", "valid", "indeed", "that", "not", "yes", "no"}
_DOLLARS = re.compile(r"^\$+|\$+$")

log = logging.getLogger(__name__)
Reason = Literal["match", "mismatch", "no_answer", "timeout", "unparsable_gold"]


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


def last_boxed(text: str) -> str | None:
    """Content of the last closed `\\boxed{...}` / `\\fbox{...}` (nested braces matched), or `\\boxed 5`."""
    for m in reversed(list(_BOX.finditer(text))):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1:j].strip()
            continue  # unclosed: try an earlier box
        tail = re.match(r"([^\s$]+)", text[i:])
        if tail:
            return tail.group(1)
    return None


def _extract_from(part: str) -> str | None:
    boxed = last_boxed(part)
    if boxed:
        return boxed
    for said in reversed(_ANSWER_IS.findall(part)):
        ans = _HEDGES.sub("", _DOLLARS.sub("", said.strip()).strip())
        if ans and ans.split()[0].lower().strip(",.!") not in _JUDGEMENTS:
            return ans
    hashes = _HASHES.findall(part)
    if hashes:
        return hashes[-1].strip()
    last = part.rstrip().rsplit("\n", 1)[-1]
    concl = _CONCLUDES.search(last)
    if concl:
        return concl.group(1).rstrip(".,")
    return None


def extract_answer(text: str | None) -> str | None:
    """The final answer a response states, or None when it states none (an "answerless" response)."""
    if not text:
        return None
    thought, after = split_thought(text)
    for part in (after, thought) if thought else (after,):
        ans = _extract_from(part)
        if ans:
            return ans
    return None


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


def _verify_worker(gold: str, pred: str, timeout_s: int) -> tuple[bool, Reason]:
    """Runs in a worker process (its main thread), so math-verify's signal-based timeouts work."""
    from math_verify import parse, verify

    g = parse("\\boxed{" + gold + "}", parsing_timeout=timeout_s)
    if not g:
        return False, "unparsable_gold"
    p = parse("\\boxed{" + pred + "}", parsing_timeout=timeout_s)
    ok = bool(p) and bool(verify(g, p, timeout_seconds=timeout_s))
    return ok, "match" if ok else "mismatch"


def _canon(s: str) -> str:
    return re.sub(r"\s+", "", s).strip("$.")


def _plain_number(s: str) -> Decimal | None:
    s = _canon(s)
    return Decimal(s.replace(",", "")) if _NUMBER.match(s) else None


class AnswerChecker:
    """Checks (gold, predicted answer) pairs with math-verify in a process pool, with deadlines and a cache.

    `workers` processes are started lazily on the first pair that needs math-verify; pairs whose strings are
    equal (ignoring whitespace and `$`) are decided without it. Use as a context manager or call `close()`.
    """

    def __init__(self, workers: int = 1, timeout_s: float = 5.0, cache_size: int = 200_000):
        self.workers = max(1, workers)
        self.timeout_s = timeout_s
        self._cache: OrderedDict[tuple[str, str], tuple[bool, Reason]] = OrderedDict()
        self._cache_size = cache_size
        self._pool: mp.pool.Pool | None = None
        self.n_timeouts = 0

    # -- pool
    def _get_pool(self) -> mp.pool.Pool:
        if self._pool is None:
            self._pool = mp.get_context("fork").Pool(self.workers)
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
        self._cache[key] = value
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def verify_many(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[bool, Reason]]:
        """Verdicts for (gold, predicted answer string) pairs, in order."""
        pairs = list(pairs)
        todo: dict[tuple[str, str], None] = {}
        for key in pairs:
            if key in self._cache:
                self._cache.move_to_end(key)
            elif _canon(key[0]) == _canon(key[1]) and key[0].strip():
                self._remember(key, (True, "match"))
            elif (g := _plain_number(key[0])) is not None and (p := _plain_number(key[1])) is not None:
                self._remember(key, (True, "match") if g == p else (False, "mismatch"))
            else:
                todo[key] = None
        pending = list(todo)
        while pending:
            pool = self._get_pool()
            jobs = [(key, pool.apply_async(_verify_worker, (*key, max(1, int(self.timeout_s))))) for key in pending]
            pending = []
            for idx, (key, job) in enumerate(jobs):
                deadline = time.monotonic() + self.timeout_s + 1.0
                try:
                    self._remember(key, job.get(timeout=max(0.0, deadline - time.monotonic())))
                except mp.TimeoutError:
                    # A hung worker cannot be interrupted alone: replace the pool, resubmit the rest.
                    self.n_timeouts += 1
                    self._remember(key, (False, "timeout"))
                    self.close()
                    pending = [k for k, _ in jobs[idx + 1:]]
                    break
                except Exception as err:  # math-verify raised on odd input: a wrong answer, not a crash
                    log.debug("math-verify failed on %r vs %r: %s", *key, err)
                    self._remember(key, (False, "mismatch"))
        return [self._cache[key] for key in pairs]

    def check(self, gold: str, text: str | None) -> Verdict:
        """Extract the answer from a full response/segment and check it against gold."""
        return self.check_many([(gold, text)])[0]

    def check_many(self, items: Iterable[tuple[str, str | None]]) -> list[Verdict]:
        items = list(items)
        extracted = [extract_answer(text) for _, text in items]
        return self.check_answers([(g, e) for (g, _), e in zip(items, extracted, strict=True)])

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
