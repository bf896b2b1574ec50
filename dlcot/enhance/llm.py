"""The LLM-judged backends (`enhance.backend=llm | hybrid`): the paper's structure decisions asked of a judge.

- `llm`: the judge segments the trace (restatement / understanding / approaches / checks / conclusion), labels
  every approach correct / incorrect / incomplete against gold and quotes its erroneous steps, and clusters the
  approaches and checks by method (the paper: Qwen2.5-72B for structure, GPT-4o for labels).
- `hybrid`: the offline segmentation (segment.py), then the judge's labels, error spans and clusters.

Every answer is validated, never trusted (realign.py for quotes): segments must be found in order and cover the
trace with a legal order of kinds; there is one label per approach, each one of the three; every error quote
lies inside its approach; clusters partition the items. A failed answer is asked again once with the error
stated (judge.py), then that step falls back to the offline result for that trace -- offline segmentation,
math-verify outcomes with no error spans, bigram clustering -- and the fallback is recorded in the row
(`lineage.judge.fallbacks`, summed in stats.json as `judge_fallbacks` by step and reason). Nothing is dropped
for a bad judge answer. What the judge decides, the enhanced text is still the trace's own text, spliced.

Traces whose own final answer is not gold are rejected by the pipeline whatever the judge says, so `enhance`
never sends them (`gate`; `dlcot segment` judges every trace). Each step is one engine batch over a chunk of
traces (`prepare`); the pipeline then enhances the chunk's traces
one by one from the stored results (`judged_map`), so rows are written in input order and a killed run resumes
at a chunk boundary with the judge's answers already in its cache.
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dlcot.enhance.cues import final_statement
from dlcot.enhance.judge import Judge, Usage, load_prompts
from dlcot.enhance.label import Labeled, OfflineBackend, final_answer_of
from dlcot.enhance.realign import JudgeError, locate, parse_json
from dlcot.errors import ConfigError
from dlcot.records import Reject, Segment, Segmentation, Trace

KINDS = ("restatement", "understanding", "approach", "verification", "conclusion")
LABELS = ("correct", "incorrect", "incomplete")


@dataclass
class Judged:
    """What the judge decided for one trace (None where a step fell back to the offline result)."""

    segmentation: Segmentation
    labeled: Labeled
    clusters: list[int | None] | None = None
    usage: Usage = field(default_factory=Usage)
    sent: bool = True  # False: gated (its final answer is not gold), never shown to the judge


# ------------------------------------------------------------------------------------------------ validation
def parse_segments(answer: str, text: str, trace_id: str) -> Segmentation:
    """The judge's segmentation as spans of `text`; JudgeError when it does not realign or breaks the order."""
    obj = parse_json(answer)
    items = obj.get("segments")
    if not isinstance(items, list) or not items:
        raise JudgeError("bad_schema", 'expected {"segments": [{"kind": ..., "starts_with": ...}, ...]}')
    starts: list[tuple[str, int]] = []
    pos = 0
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("starts_with"), str):
            raise JudgeError("bad_schema", f"segment {k + 1} has no starts_with string")
        kind = str(item.get("kind", "")).lower()
        if kind not in KINDS:
            raise JudgeError("bad_kind", f"segment {k + 1} has kind {item.get('kind')!r}; use one of {KINDS}")
        lo = pos + 1 if starts else 0
        found = locate(text, item["starts_with"], lo)
        if found is None:
            anywhere = locate(text, item["starts_with"], 0)
            if anywhere is not None:
                raise JudgeError("span_out_of_order", f"segment {k + 1} starts at {item['starts_with'][:60]!r}, "
                                                      "which comes before the previous segment's start")
            raise JudgeError("span_not_found", f"segment {k + 1}: {item['starts_with'][:60]!r} is not in the "
                                               "reasoning (copy it exactly)")
        if not starts and text[:found.start].strip():
            raise JudgeError("coverage", "the first segment must start at the beginning of the reasoning")
        pos = found.start if starts else 0
        starts.append((kind, pos))
    _check_order([k for k, _ in starts])
    segs: list[Segment] = []
    approach = 0
    for i, (kind, a) in enumerate(starts):
        b = starts[i + 1][1] if i + 1 < len(starts) else len(text)
        if not text[a:b].strip():
            raise JudgeError("coverage", f"segment {i + 1} is empty")
        answer_ = final_statement(text[a:b])[0] if kind in ("approach", "verification") else None
        if kind == "approach":
            approach += 1
        segs.append(Segment(kind, a, b, approach if kind == "approach" else None, answer_))
    first = next(s for s in segs if s.kind == "approach")
    first_answer_end = first.end
    while first_answer_end > first.start and text[first_answer_end - 1].isspace():
        first_answer_end -= 1
    return Segmentation(trace_id, len(text), first_answer_end, segs)


def _check_order(kinds: list[str]) -> None:
    if "approach" not in kinds:
        raise JudgeError("section_order", "there must be at least one approach")
    rank = {"restatement": 0, "understanding": 1, "approach": 2, "verification": 2, "conclusion": 3}
    for a, b in zip(kinds, kinds[1:], strict=False):
        if rank[b] < rank[a] or (rank[a] == rank[b] and rank[a] != 2):
            raise JudgeError("section_order", f"{b!r} cannot follow {a!r} (order: restatement, understanding, "
                                              "approaches and checks, conclusion; each of the others at most once)")
    if kinds.index("approach") > min((i for i, k in enumerate(kinds) if k == "verification"), default=len(kinds)):
        raise JudgeError("section_order", "a verification cannot come before the first approach")


def parse_labels(answer: str, text: str, seg: Segmentation) -> tuple[list[str], list[tuple[int, int]]]:
    """(a label per approach, error spans as char ranges of `text`); JudgeError when invalid."""
    approaches = [s for s in seg.segments if s.kind == "approach"]
    obj = parse_json(answer)
    items = obj.get("approaches")
    if not isinstance(items, list):
        raise JudgeError("bad_schema", 'expected {"approaches": [{"approach": 1, "label": ..., "errors": [...]}]}')
    by_no: dict[int, dict] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("approach"), int):
            raise JudgeError("bad_schema", "each entry needs an integer 'approach'")
        by_no[item["approach"]] = item
    if sorted(by_no) != list(range(1, len(approaches) + 1)):
        raise JudgeError("bad_schema", f"expected exactly approaches 1..{len(approaches)}, got {sorted(by_no)}")
    labels, spans = [], []
    for no, s in enumerate(approaches, 1):
        item = by_no[no]
        label = str(item.get("label", "")).strip().lower()
        if label not in LABELS:
            raise JudgeError("bad_label", f"approach {no} has label {item.get('label')!r}; use one of {LABELS}")
        labels.append(label)
        errors = item.get("errors") or []
        if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
            raise JudgeError("bad_schema", f"approach {no}: errors must be a list of quotes")
        for quote in errors:
            found = locate(text, quote, s.start, s.end)
            if found is None:
                elsewhere = locate(text, quote, 0)
                if elsewhere is not None:
                    raise JudgeError("error_span_outside_approach", f"approach {no}: the error {quote[:60]!r} is "
                                                                    "not inside that approach")
                raise JudgeError("span_not_found", f"approach {no}: the error {quote[:60]!r} is not in the text")
            spans.append((found.start, found.end))
    return labels, spans


def _clusters_of(answer: str, n: int) -> list[int]:
    return parse_clusters(answer, n)


def parse_clusters(answer: str, n: int) -> list[int]:
    """Cluster ids (0, 1, ... in order of first appearance) for items 1..n; JudgeError unless a partition."""
    obj = parse_json(answer)
    groups = obj.get("clusters")
    if not isinstance(groups, list):
        raise JudgeError("bad_schema", 'expected {"clusters": [{"members": [1, 3], "method": ...}, ...]}')
    owner: dict[int, int] = {}
    for g, group in enumerate(groups):
        members = group.get("members") if isinstance(group, dict) else group
        if not isinstance(members, list) or not all(isinstance(m, int) for m in members):
            raise JudgeError("bad_schema", f"cluster {g + 1}: members must be a list of item numbers")
        for m in members:
            if not 1 <= m <= n or m in owner:
                raise JudgeError("bad_clusters", f"item {m} is out of range 1..{n} or in two clusters")
            owner[m] = g
    if len(owner) != n:
        raise JudgeError("bad_clusters", f"items {sorted(set(range(1, n + 1)) - set(owner))} are in no cluster")
    renum: dict[int, int] = {}
    return [renum.setdefault(owner[m], len(renum)) for m in range(1, n + 1)]


# ------------------------------------------------------------------------------------------------ backend
class JudgedBackend:
    """`enhance.backend=llm|hybrid`: the judge's decisions for a chunk, prepared in one batch per step."""

    marks_error_spans = True

    def __init__(self, mode: str, judge: Judge, offline: OfflineBackend, max_chars: int, rewrite: bool = False,
                 gate: bool = True):
        self.name, self.judge, self.offline, self.max_chars = mode, judge, offline, max_chars
        self.rewrite = rewrite
        self.gate = gate  # enhance: traces whose final answer is not gold are rejected anyway; never sent
        self._done: dict[str, Judged] = {}
        self._rewrites: dict[str, dict[int, tuple[str, str]]] = {}

    # -- what the pipeline reads for one trace
    def _get(self, trace: Trace) -> Judged:
        if trace.id not in self._done:  # a gated trace (not sent to the judge): the offline result
            off = self.offline.label(trace, self.offline.segment(trace))
            self._done[trace.id] = Judged(off.segmentation, off, sent=False)
        return self._done[trace.id]

    def segment(self, trace: Trace) -> Segmentation:
        return self._get(trace).segmentation

    def label(self, trace: Trace, segmentation: Segmentation) -> Labeled:
        return self._get(trace).labeled

    def clusters(self, trace: Trace) -> list[int | None] | None:
        return self._get(trace).clusters

    def rewrites(self, trace: Trace) -> dict[int, tuple[str, str]] | None:
        """Accepted seam rewrites for the second splice of a trace (None: splice with connective repair)."""
        return self._rewrites.get(trace.id)

    def ask_rewrites(self, rows: list[tuple[Trace, dict[str, Any]]]) -> None:
        """One batch over every seam of the chunk's kept rows; accepted ones are used by the next `rewrites`."""
        from dlcot.enhance.rewrite import parse_rewrite, seams

        self._rewrites = {}
        asks = [(t, off, head, before) for t, row in rows for off, head, before in seams(t.reasoning, row["lineage"])]
        if not asks:
            return
        values = [{"problem": t.problem, "before": before, "after": head} for t, _, head, before in asks]
        validate = [functools.partial(parse_rewrite, old=head) for _, _, head, _ in asks]
        res = self.judge.ask("rewrite", [f"{t.id}@{off}" for t, off, _, _ in asks], values, validate,
                             [self._done[t.id].usage for t, *_ in asks])
        for (t, off, head, _), r in zip(asks, res, strict=True):
            if isinstance(r, JudgeError):
                self._fallback(t, "rewrite", r.reason)
            else:
                self._rewrites.setdefault(t.id, {})[off] = (head, r)

    def usage(self, trace_id: str) -> dict[str, Any] | None:
        j = self._done.get(trace_id)
        return j.usage.to_dict() if j and j.sent else None

    # -- one chunk
    def prepare(self, traces: list[Trace]) -> None:
        """Run the judge's steps over `traces`, one engine batch per step (plus one for the retries)."""
        self._done, self._rewrites = {}, {}
        if self.gate:  # the pipeline's first keep rule, checked here so that rejected traces cost no judge call
            finals = self.offline.checker.check_answers([(t.gold_answer, final_answer_of(t.reasoning))
                                                          for t in traces])
            traces = [t for t, v in zip(traces, finals, strict=True) if v.correct]
        for t in traces:
            off = self.offline.label(t, self.offline.segment(t))
            self._done[t.id] = Judged(off.segmentation, off)
        live = [t for t in traces if t.reasoning.strip()] if self.name != "offline" else []
        too_long = [t for t in live if len(t.reasoning) > self.max_chars]
        for t in too_long:
            for step in self._steps():
                self._fallback(t, step, "too_long")
        live = [t for t in live if len(t.reasoning) <= self.max_chars]
        if self.name == "llm":
            self._segment_step(live)
        if live:
            self._label_step(live)
            self._cluster_step(live)

    def _steps(self) -> tuple[str, ...]:
        return {"llm": ("segment", "label", "cluster"), "hybrid": ("label", "cluster")}.get(self.name, ())

    def _fallback(self, t: Trace, step: str, reason: str) -> None:
        self._done[t.id].usage.fallbacks.append({"step": step, "reason": reason})

    def _ask(self, step: str, traces: list[Trace], values: list[dict[str, str]],
             validate: list[Callable[[str], Any]]) -> list[Any]:
        """The step's results per trace; None (and a counted fallback) where the judge failed twice."""
        if not traces:
            return []
        res = self.judge.ask(step, [t.id for t in traces], values, validate,
                             [self._done[t.id].usage for t in traces])
        out = []
        for t, r in zip(traces, res, strict=True):
            if isinstance(r, JudgeError):
                self._fallback(t, step, r.reason)
                r = None
            out.append(r)
        return out

    def _segment_step(self, traces: list[Trace]) -> None:
        values = [{"problem": t.problem, "reasoning": t.reasoning} for t in traces]
        validate = [lambda a, t=t: parse_segments(a, t.reasoning, t.id) for t in traces]
        for t, seg in zip(traces, self._ask("segment", traces, values, validate), strict=True):
            if seg is not None:
                j = self._done[t.id]
                relabeled = self.offline.label(t, seg)  # math-verify outcomes: the fallback if labels fail
                j.segmentation, j.labeled = relabeled.segmentation, relabeled

    def _label_step(self, traces: list[Trace]) -> None:
        todo = [t for t in traces if any(s.kind == "approach" for s in self._done[t.id].segmentation.segments)]
        values, validate = [], []
        for t in todo:
            seg = self._done[t.id].segmentation
            blocks = [f"### Approach {s.approach}\n{t.reasoning[s.start:s.end].strip()}"
                      for s in seg.segments if s.kind == "approach"]
            values.append({"problem": t.problem, "gold": t.gold_answer, "approaches": "\n\n".join(blocks)})
            validate.append(lambda a, t=t, seg=seg: parse_labels(a, t.reasoning, seg))
        for t, res in zip(todo, self._ask("label", todo, values, validate), strict=True):
            if res is None:
                continue
            labels, spans = res
            j = self._done[t.id]
            it = iter(labels)
            segs = [replace(s, outcome=next(it)) if s.kind == "approach" else s
                    for s in j.labeled.segmentation.segments]
            j.labeled = replace(j.labeled, segmentation=replace(j.labeled.segmentation, segments=segs),
                                error_spans=spans)
            j.segmentation = j.labeled.segmentation

    def _cluster_step(self, traces: list[Trace]) -> None:
        todo, values, validate, where = [], [], [], []
        for t in traces:
            segs = self._done[t.id].segmentation.segments
            idx = [i for i, s in enumerate(segs) if s.kind in ("approach", "verification")]
            if len(idx) < 2:
                continue  # nothing to group: every item is its own cluster without asking
            items = [f"[{k}] ({'attempt' if segs[i].kind == 'approach' else 'check'})\n"
                     f"{t.reasoning[segs[i].start:segs[i].end].strip()}" for k, i in enumerate(idx, 1)]
            todo.append(t)
            where.append(idx)
            values.append({"problem": t.problem, "items": "\n\n".join(items)})
            validate.append(functools.partial(_clusters_of, n=len(idx)))
        for t, idx, ids in zip(todo, where, self._ask("cluster", todo, values, validate), strict=True):
            if ids is None:
                continue
            out: list[int | None] = [None] * len(self._done[t.id].segmentation.segments)
            for i, c in zip(idx, ids, strict=True):
                out[i] = c
            self._done[t.id].clusters = out


def make_backend(mode: str, judge_cfg: dict[str, Any], offline: OfflineBackend, *, runs_dir: str = "runs",
                 tokenizer: str = "qwen2", engine: Any = None, rewrite: bool = False, gate: bool = True
                 ) -> JudgedBackend:
    """The judged backend from `enhance.judge` (a plain dict); `engine` overrides the configured one (tests)."""
    from omegaconf import OmegaConf

    from dlcot.engines import make_engine

    ecfg = judge_cfg["engine"]
    if engine is None and ecfg["name"] in ("hf", "vllm") and not judge_cfg.get("model"):
        raise ConfigError(f"enhance.backend={mode} with enhance.judge.engine.name={ecfg['name']} needs "
                          "enhance.judge.model=PATH (the judge model)")
    if engine is None:
        engine = make_engine(OmegaConf.create(ecfg), model_path=judge_cfg.get("model"), tokenizer_name=tokenizer,
                             seed=judge_cfg.get("seed", 0))
    model_id = ":".join(str(x) for x in (ecfg["name"], judge_cfg.get("model") or ecfg.get("served_model") or "",
                                         ecfg.get("path") or "", sorted((ecfg.get("rules") or {}).items())))
    cache = judge_cfg.get("cache_dir") or str(Path(runs_dir) / "judge_cache")
    judge = Judge(engine, model_id=model_id, prompts=load_prompts(judge_cfg.get("prompts")), cache_dir=cache,
                  max_new_tokens=judge_cfg["max_new_tokens"], temperature=judge_cfg["temperature"],
                  top_p=judge_cfg["top_p"], seed=judge_cfg["seed"], retries=judge_cfg["retries"])
    return JudgedBackend(mode, judge, offline, judge_cfg["max_chars"], rewrite=rewrite, gate=gate)


def judged_map(fn: Callable[[Any], tuple[str, dict]], items: Iterable[Any], backend: JudgedBackend,
               chunk: int) -> Iterator[tuple[str, dict]]:
    """fn over items in order, a chunk at a time: the judge's steps for the chunk first (one batch each), then
    each trace, its row carrying what the judge spent on it (`lineage.judge` / a rejected row's `judge`)."""
    it = iter(items)
    while batch := list(itertools.islice(it, max(1, chunk))):
        backend.prepare([x for x in batch if isinstance(x, Trace)])
        results = [fn(x) for x in batch]
        if backend.rewrite:
            results = _with_rewrites(fn, batch, results, backend)
        for x, (kind, row) in zip(batch, results, strict=True):
            usage = None if isinstance(x, Reject) else backend.usage(x.id)
            if usage is not None:
                (row["lineage"] if kind == "kept" and "lineage" in row else row)["judge"] = usage
            yield kind, row


def _with_rewrites(fn: Callable[[Any], tuple[str, dict]], batch: list[Any], results: list[tuple[str, dict]],
                   backend: JudgedBackend) -> list[tuple[str, dict]]:
    """The chunk's kept rows spliced again with the judge's accepted seam rewrites; a row whose final answer the
    rewrites would change keeps its first splice (fallback `rewrite: answer_changed`)."""
    kept = [(x, row) for x, (kind, row) in zip(batch, results, strict=True)
            if kind == "kept" and isinstance(x, Trace) and "lineage" in row]
    backend.ask_rewrites(kept)
    out = []
    for x, first in zip(batch, results, strict=True):
        if isinstance(x, Trace) and backend.rewrites(x):
            again = fn(x)
            if again[0] != "kept":
                backend._fallback(x, "rewrite", again[1]["reason"])
                again = first
            out.append(again)
        else:
            out.append(first)
    return out
