"""The enhance and segment passes: streaming, resumable, parallel over a process pool.

Per trace (`enhance_one`): segment → label (outcomes, final answer) → keep or reject → cluster → decide → splice
→ check the enhanced text still ends in the gold answer → count tokens (total and per segment kind, before
and after). Traces go to worker processes in small batches through a bounded window of futures, so at most
a few batches are in memory whatever the input size, and results are written in input order.

Resuming: both outputs are `ResumableJsonl` files written in input order, so after a crash the lines already
written are exactly the first k inputs; a rerun skips k inputs (checking their ids) and appends the rest,
which gives the same files as an uninterrupted run. `stats.json` is computed from the finished output files and
the count of input records read (which they must add up to), so it is identical too.

Keep rules (reasons in `rejected.jsonl`), one rule for every backend and policy: `empty_reasoning`;
`unclosed_thought` (a thought opened and never closed: truncated, whatever its last statement says, since the
text after that statement stops mid-way); `truncated` (no tags, but the text goes on past its final statement
and stops mid-sentence: cues.trails_off); `unparsable_gold` (math-verify cannot read the gold answer); then the
trace's own conclusion decides, since the enhanced text must end with it: `no_final_answer` (none at the end),
`final_answer_wrong`, `final_answer_unverified` (math-verify timed out or could not decide: never read as
wrong, never kept). A trace whose final answer is right but where no
approach is labelled correct is `no_correct_approach` (SODE skips it: `no_correct=reject`, the default) or kept
with its raw text (`no_correct=keep_raw`, note `kept_raw`). Finally `answer_changed`: a spliced text that no
longer ends in the gold answer is not written. An approach whose answer math-verify cannot decide is
`unverified`: never the trunk's end and never cut as wrong (simplify.py).

Judged backends (`enhance.backend=llm|hybrid`, llm.py) run in this process, a chunk of traces per engine batch.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from dlcot import procs
from dlcot.answers import AnswerChecker
from dlcot.enhance.cluster import cluster
from dlcot.enhance.counting import TokenJob, fill_counts
from dlcot.enhance.cues import final_statement, trails_off
from dlcot.enhance.label import UNDECIDED, Labeled, OfflineBackend, final_answer_of
from dlcot.enhance.simplify import Decision, Policy, decide, is_passthrough, splice
from dlcot.errors import ConfigError, RecordError
from dlcot.records import (
    Counted,
    Reject,
    ResumableJsonl,
    Trace,
    check_accounting,
    read_records,
    reopen_committed,
    to_json_dict,
)
from dlcot.schema import EnhanceConfig

log = logging.getLogger(__name__)
_OPEN_TAGS = ("<think>", "<|begin_of_thought|>")
_CLOSE_TAGS = ("</think>", "<|end_of_thought|>")
BATCH = 8  # traces per task sent to a worker
# Batches in flight: enough that the workers keep going while this process loads the tokenizer (counting.py; ~8 s
# with two busy workers, in which they finish ~260 Sky-T1 traces: at 32 batches they sat idle for ~1 s), few
# enough that memory stays flat whatever the input size.
WINDOW = 64


@dataclass
class Settings(EnhanceConfig):
    """Everything a worker needs (picklable): the `enhance` section (policy, backend, thresholds, judge: declared
    and checked once, in dlcot.schema) plus what the run adds."""

    tokenizer: str = "qwen2"
    # CPU seconds per math-verify call; a candidate it cannot decide in time is `unverified`. 2 s is ~4x the dearest
    # pair on the 500 Sky-T1 traces (0.55 s): at 0.5 s, pairs near the limit flipped with the parser's warm cache
    answer_timeout_s: float = 2.0
    runs_dir: str = "runs"  # where the judge's answer cache lives unless enhance.judge.cache_dir is set
    judge_all: bool = False  # segment: judge every trace (enhance sends only those whose final answer is gold)

    @classmethod
    def of(cls, enhance: EnhanceConfig, **run: Any) -> Settings:
        """The settings of a composed `enhance` section plus the run's fields (tokenizer, runs_dir, ...)."""
        return cls(**{f.name: getattr(enhance, f.name) for f in fields(EnhanceConfig)}, **run)

    @property
    def policy(self) -> Policy:
        """The policy `decide` / `splice` read: the section itself."""
        return self

    @property
    def is_passthrough(self) -> bool:
        return is_passthrough(self)

    @property
    def judged(self) -> bool:
        return self.backend != "offline" or self.rewrite == "llm"


class _Worker:
    """Per-process state: answer checker, backend. Built once per process by `_init`. No tokenizer: the writing
    process counts tokens (counting.py)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        _warm_imports()  # the checker forks its verifier from this process: warm, also after a timeout
        self.checker = AnswerChecker(workers=1, timeout_s=settings.answer_timeout_s)
        self.backend: Any = OfflineBackend(self.checker)
        if settings.judged:
            from dlcot.enhance.llm import make_backend

            self.backend = make_backend(settings.backend, asdict(settings.judge), self.backend,
                                        runs_dir=settings.runs_dir, tokenizer=settings.tokenizer or "qwen2",
                                        engine=JUDGE_ENGINE.get("engine"), rewrite=settings.rewrite == "llm",
                                        gate=not settings.judge_all)


JUDGE_ENGINE: dict[str, Any] = {}  # tests put a ready engine here ("engine") instead of building enhance.judge.engine


def _warm_imports() -> None:
    """Load math-verify (sympy, the LaTeX grammar: ~2 s) in this process. Processes forked afterwards -- workers,
    and the verifier each worker's AnswerChecker forks (again after every timed-out call) -- start warm."""
    from math_verify import parse

    parse("\\boxed{1/2}")
_STATE: dict[str, _Worker] = {}


def _init(settings: Settings) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # a forked worker must not use the parent's thread pool
    _STATE["w"] = _Worker(settings)


def _worker() -> _Worker:
    return _STATE["w"]


def _reject(trace_id: str, reason: str, detail: str) -> tuple[str, dict[str, Any]]:
    return "rejected", {"id": trace_id, "reason": reason, "detail": detail}


def enhance_one(item: Trace | Reject) -> tuple[str, dict[str, Any]]:
    """("kept", enhanced row) or ("rejected", reject row) for one input record. Never raises on bad data."""
    if isinstance(item, Reject):
        return "rejected", {"id": item.id, "reason": item.reason, "detail": item.detail}
    w = _worker()
    try:
        return _enhance(item, w)
    except Exception as err:  # a bug on one odd trace must not end a long run; it is reported, not hidden
        log.exception("enhance failed on %s", item.id)
        return _reject(item.id, "internal_error", f"{type(err).__name__}: {err}")


Outcome = tuple[str, dict[str, Any]]


def _enhance(trace: Trace, w: _Worker) -> Outcome:
    """The steps of `enhance_one` (module docstring): each check returns a reject row, or None to go on."""
    if not trace.reasoning.strip():
        return _reject(trace.id, "empty_reasoning", "the reasoning field is empty or whitespace")
    final, stated_at = final_statement(trace.reasoning)
    if (rejected := _check_conclusion(trace, final, stated_at, w)) is not None:
        return rejected
    lab: Labeled = w.backend.label(trace, w.backend.segment(trace))
    if (rejected := _check_labels(trace, lab, w)) is not None:
        return rejected
    notes = [] if lab.first_correct is not None else ["kept_raw"]
    segs = lab.segmentation.segments
    texts = [trace.reasoning[s.start:s.end] for s in segs]
    judged = w.backend.clusters(trace) if hasattr(w.backend, "clusters") else None
    clusters: list[int | None] = judged if judged is not None else _offline_clusters(segs, texts, w.settings)
    # the paragraph the final answer is read from, and what follows, is never cut: not by a policy, not as an error
    errors = [(a, min(b, stated_at)) for a, b in lab.error_spans if stated_at is None or a < stated_at]
    if notes or w.settings.policy.is_passthrough:
        decisions = [Decision(True) for _ in segs]
    else:
        decisions = decide(segs, clusters, w.settings.policy, texts, error_spans=errors, protect_from=stated_at)
    rewrites = w.backend.rewrites(trace) if hasattr(w.backend, "rewrites") else None
    cut = splice(trace.reasoning, segs, decisions, w.settings.policy, errors, rewrites)
    if (rejected := _check_answer_kept(trace, lab, cut.text, w)) is not None:
        return rejected
    for seg_lineage, c in zip(cut.lineage["segments"], clusters, strict=False):
        seg_lineage["cluster"] = c
    lineage = {**cut.lineage, "backend": w.backend.name, "notes": notes,
               "first_answer_end": lab.segmentation.first_answer_end, "final_answer": lab.final_answer,
               "answer_preserved": True, "error_spans_marked": len(lab.error_spans),
               "tokens": TokenJob(w.settings.tokenizer, trace.reasoning, cut.text,
                                  [(s.start, s.end, s.kind) for s in segs],
                                  [None if d.kept else d.reason or "cut" for d in decisions], cut.kinds)}
    return "kept", {**to_json_dict(trace), "enhanced": cut.text, "lineage": lineage}


def _check_conclusion(trace: Trace, final: str | None, stated_at: int | None, w: _Worker) -> Outcome | None:
    """The trace's own conclusion decides first (one rule, every backend), before any approach is segmented or
    verified: a trace rejected here costs one math-verify call, not one per candidate answer (the verdict is
    cached, so `label` gets it for free). A truncated trace is rejected before any check: its "final" statement
    is only whatever came last before the cut, and even when that holds the gold value the text written would
    end mid-sentence ("But earlier methods gave me 16, so")."""
    text = trace.reasoning
    if any(t in text for t in _OPEN_TAGS) and not any(t in text for t in _CLOSE_TAGS):
        return _reject(trace.id, "unclosed_thought", "the thought is opened and never closed (truncated); the "
                       "enhanced text must end with the conclusion and its answer")
    if stated_at is not None and (fragment := trails_off(text, stated_at)) is not None:
        return _reject(trace.id, "truncated", f"the reasoning goes on past its final statement ({final!r}) and "
                       f"stops mid-sentence (...{fragment!r}); the enhanced text must end with the conclusion")
    verdict = w.checker.check_answers([(trace.gold_answer, final)])[0]
    if verdict.reason == "unparsable_gold":
        return _reject(trace.id, "unparsable_gold", f"math-verify cannot parse gold answer {trace.gold_answer!r}")
    if verdict.correct:
        return None
    if final is None:
        return _reject(trace.id, "no_final_answer", "the reasoning states no final answer at its end (truncated?); "
                       "the enhanced text must end with the conclusion and its answer")
    if verdict.reason in UNDECIDED:
        return _reject(trace.id, "final_answer_unverified",
                       f"math-verify could not decide {final!r} against gold {trace.gold_answer!r}")
    return _reject(trace.id, "final_answer_wrong", f"the reasoning ends with {final!r}, gold is {trace.gold_answer!r}")


def _check_labels(trace: Trace, lab: Labeled, w: _Worker) -> Outcome | None:
    """A gold answer math-verify cannot read, or (with `no_correct=reject`) no approach labelled correct."""
    if not lab.gold_parsable:
        return _reject(trace.id, "unparsable_gold", f"math-verify cannot parse gold answer {trace.gold_answer!r}")
    if lab.first_correct is None and w.settings.no_correct == "reject":
        segs = lab.segmentation.segments
        return _reject(trace.id, "no_correct_approach",
                       f"the final answer is right but none of {sum(s.kind == 'approach' for s in segs)} "
                       f"approaches is labelled correct ({w.backend.name} backend)")
    return None


def _check_answer_kept(trace: Trace, lab: Labeled, enhanced: str, w: _Worker) -> Outcome | None:
    """The enhanced text must still end in the gold answer; a row whose final answer changed is not written."""
    new_final = final_answer_of(enhanced)
    if new_final == lab.final_answer:  # the same answer string needs no second check
        return None
    if w.checker.check_answers([(trace.gold_answer, new_final)])[0].correct:
        return None
    return _reject(trace.id, "answer_changed", f"the enhanced text ends with {new_final!r} (raw: "
                   f"{lab.final_answer!r}, gold {trace.gold_answer!r}); nothing is written for it")


def _offline_clusters(segs: list, texts: list[str], st: Settings) -> list[int | None]:
    clustered = [i for i, s in enumerate(segs) if s.kind in ("approach", "verification")]
    ids = cluster([texts[i] for i in clustered], st.cluster_threshold)
    clusters: list[int | None] = [None] * len(segs)
    for i, c in zip(clustered, ids, strict=False):
        clusters[i] = c
    return clusters


def segment_one(item: Trace | Reject) -> tuple[str, dict[str, Any]]:
    """("kept", segmentation in the gold format, with outcomes) or ("rejected", reject row)."""
    if isinstance(item, Reject):
        return "rejected", {"id": item.id, "reason": item.reason, "detail": item.detail}
    w = _worker()
    try:
        if not item.reasoning.strip():
            return _reject(item.id, "empty_reasoning", "the reasoning field is empty or whitespace")
        lab = w.backend.label(item, w.backend.segment(item))
        return "kept", lab.segmentation.to_dict()
    except Exception as err:
        log.exception("segment failed on %s", item.id)
        return _reject(item.id, "internal_error", f"{type(err).__name__}: {err}")


# ------------------------------------------------------------------------------------------------ streaming
def _run_batch(fn: Callable[[Any], Any], batch: list[Any]) -> list[Any]:
    return [fn(x) for x in batch]


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], settings: Settings, workers: int,
                batch: int = BATCH, started: Callable[[], None] = lambda: None) -> Iterator[Any]:
    """fn over items, in order, on `workers` processes (in-process when workers <= 1), memory bounded.
    `started` is called once the workers have their first window of work, before waiting for any result."""
    if settings.judged:  # one engine, in this process: the judge batches a chunk of traces per step
        _init(settings)
        started()
        try:
            from dlcot.enhance.llm import judged_map

            yield from judged_map(fn, items, _worker().backend, settings.judge.chunk)
        finally:
            _STATE.pop("w").checker.close()
        return
    if workers <= 1:
        _init(settings)
        started()
        try:
            for x in items:
                yield fn(x)
        finally:
            _STATE.pop("w").checker.close()
        return
    _warm_imports()  # once here, inherited by every forked worker, instead of once per worker
    procs.install(sigterm=False)  # workers (and their math-verify pools) die with this process
    ctx = mp.get_context("fork")
    window: deque = deque()
    it = iter(items)
    before = set(mp.active_children())
    ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(settings,))
    waiting = False
    try:
        while True:
            chunk = list(itertools.islice(it, batch))
            if chunk:
                window.append(ex.submit(_run_batch, fn, chunk))
            if not waiting and (len(window) >= max(3 * workers, WINDOW) or not chunk):
                waiting = True
                started()
            while window and (len(window) >= max(3 * workers, WINDOW) or not chunk):
                yield from window.popleft().result()
            if not chunk:
                break
    except BaseException:  # Ctrl-C, SIGTERM, a failed write: stop the workers now, not after their queued batches
        ex.shutdown(wait=False, cancel_futures=True)
        for child in set(mp.active_children()) - before:
            child.kill()
        raise
    ex.shutdown()


@dataclass
class RunResult:
    n_input: int
    n_kept: int
    n_rejected: int
    resumed: int  # inputs skipped because an earlier run had written them


def run_stream(fn: Callable[[Any], tuple[str, dict]], input_path: str | Path, kept_path: Path, rejected_path: Path,
               settings: Settings, *, fields: dict[str, str] | None = None, limit: int | None = None,
               workers: int = 2, progress: bool = True, desc: str = "enhance") -> RunResult:
    """Stream records from `input_path` through `fn` into the two outputs, resuming where a crash stopped."""
    from tqdm import tqdm

    from dlcot.tokens import load_tokenizer

    if not Path(input_path).is_file():
        raise RecordError("no such file", path=input_path)
    reopen_committed(kept_path, rejected_path)
    kept = ResumableJsonl(kept_path, resume=True)
    rejected = ResumableJsonl(rejected_path, resume=True)
    try:
        done = kept.n_written + rejected.n_written
        done_ids = kept.done_ids | rejected.done_ids
        records = Counted(read_records(input_path, Trace, fields, limit))
        skipped = list(itertools.islice(records, done))
        unknown = [r.id for r in skipped if r.id not in done_ids]
        if unknown:
            raise ConfigError(f"{kept_path.parent}: the partial outputs do not match {input_path} (ids {unknown[:3]} "
                              "were not written by the earlier run); use a new output= directory")
        if done:
            log.info("resuming: %d traces already written to %s", done, kept_path.parent)
        total = _count_lines(input_path, limit)
        n_kept, n_rej = kept.n_written, rejected.n_written
        tokenizer: list[Any] = []  # loaded once the workers run, so they segment and verify meanwhile

        def load() -> None:
            tokenizer.append(load_tokenizer(settings.tokenizer) if settings.tokenizer else None)

        # closed on an interrupt too, so the "interrupted" message starts on a line of its own
        with tqdm(total=total, initial=done, desc=desc, unit="trace", disable=not progress, mininterval=0.5) as bar:
            for kind, row in ordered_map(fn, records, settings, workers, started=load):
                fill_counts([row], tokenizer[0])  # row by row: a crash loses no row that was ready
                if kind == "kept":
                    kept.write(row)
                    n_kept += 1
                else:
                    rejected.write(row)
                    n_rej += 1
                bar.update(1)
    except BaseException:
        kept.close()
        rejected.close()
        raise
    check_accounting(input_path, records.n, n_kept, n_rej)
    kept.commit()
    rejected.commit()
    return RunResult(records.n, n_kept, n_rej, done)


def _count_lines(path: str | Path, limit: int | None) -> int | None:
    """Non-blank lines of the input (the progress bar's total); streaming, in 1 MiB blocks."""
    n = 0
    with open(path, "rb") as fh:
        prev = b"\n"
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
            prev = block[-1:]
    n += prev != b"\n"
    return min(n, limit) if limit else n
