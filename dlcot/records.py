"""Records that flow between stages, and the JSONL IO every stage uses.

Contracts (docs/architecture.md §4-5): a trace has `id, problem, reasoning, gold_answer` (+ optional `response, teacher,
source`); a problem has `id, problem, gold_answer`; a segmentation has `id, n_chars, first_answer_end, segments`.
Every stage accounts for every input line: a line that cannot be used becomes a `Reject` (written to
`rejected.jsonl`) instead of stopping the run, so `n_input = n_kept + n_rejected` holds everywhere.

Writes are atomic: `ResumableJsonl` appends to `<file>.partial` (flushed per record) and renames it to the
final name on `commit()`. A rerun after a crash reads the partial file back, drops a torn last line, and
reports which ids are already done, so long stages resume without redoing finished work.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from dlcot.errors import RecordError

# Field names tried, in order, when the config gives no explicit mapping: they cover the shared Sky-T1 and
# s1K trace files and the GSM8K / MATH-500 / AIME problem files without any `data.fields` override.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "unique_id", "problem_id"),
    "problem": ("problem", "question", "prompt"),
    "gold_answer": ("gold_answer", "answer", "solution"),
    "reasoning": ("reasoning", "gemini_thinking_trajectory", "thinking", "thought"),
    "response": ("response", "final_solution", "gemini_attempt"),
    "teacher": ("teacher", "teacher_model"),
    "source": ("source",),
}


# Reject reasons of the readers below (a line that is no usable record), as opposed to a stage's own verdicts.
INPUT_REASONS = frozenset({"bad_encoding", "bad_json", "missing_field", "bad_type", "duplicate_id"})


@dataclass
class Reject:
    """One input that a stage did not keep, and why (`reason` is a short code, `detail` a sentence)."""
    id: str
    reason: str
    detail: str = ""


@dataclass
class Problem:
    id: str
    problem: str
    gold_answer: str
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED: ClassVar[tuple[str, ...]] = ("problem", "gold_answer")
    OPTIONAL: ClassVar[tuple[str, ...]] = ()


@dataclass
class Trace:
    id: str
    problem: str
    reasoning: str
    gold_answer: str
    response: str | None = None
    teacher: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED: ClassVar[tuple[str, ...]] = ("problem", "reasoning", "gold_answer")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("response", "teacher", "source")


@dataclass
class Segment:
    """A contiguous span of `reasoning` of one kind (restatement/understanding/approach/verification/conclusion)."""
    kind: str
    start: int
    end: int
    approach: int | None = None
    answer: str | None = None
    outcome: str | None = None  # correct | incorrect | incomplete, for approaches


@dataclass
class Segmentation:
    id: str
    n_chars: int
    first_answer_end: int | None
    segments: list[Segment]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Segmentation:
        keep = {f.name for f in fields(Segment)}
        segs = [Segment(**{k: v for k, v in s.items() if k in keep}) for s in d["segments"]]
        return cls(id=str(d["id"]), n_chars=int(d["n_chars"]), first_answer_end=d.get("first_answer_end"),
                   segments=segs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Pair:
    """A preference pair (`pairs.jsonl` of `dlcot mcts`, or any source): two thoughts for one problem, the
    preferred one first, each with the response that follows it. MCTS pairs share the path to the node where
    they part, which DPO's common-prefix masking uses (`train.prefix_masking`)."""
    id: str
    problem: str
    chosen: str
    rejected: str
    chosen_response: str | None = None
    rejected_response: str | None = None
    gold_answer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED: ClassVar[tuple[str, ...]] = ("problem", "chosen", "rejected")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("chosen_response", "rejected_response", "gold_answer")


R = TypeVar("R", Problem, Trace, Pair)


def to_json_dict(record: Problem | Trace | Pair) -> dict[str, Any]:
    """Flat JSON form: the record's fields, with `extra` (the source's other fields) merged back in."""
    d = asdict(record)
    extra = d.pop("extra")
    return {**extra, **{k: v for k, v in d.items() if v is not None}}


# ------------------------------------------------------------------------------------------------ reading
def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | Reject]]:
    """Stream `(line_number, object)` from a JSONL file; a line that is not a JSON object becomes a Reject.

    Raises RecordError only when the file is missing. Blank lines are skipped. Non-UTF-8 bytes reject the line.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError("no such file", path=path)
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig" if n == 1 else "utf-8"))  # an editor's BOM is no data
            except UnicodeDecodeError as err:
                why = f"{path}:{n}: not UTF-8 ({err.reason} at byte {err.start})"
                yield n, Reject(f"line:{n}", "bad_encoding", why)
                continue
            except json.JSONDecodeError as err:
                yield n, Reject(f"line:{n}", "bad_json", f"{path}:{n}: {err.msg} at column {err.colno}")
                continue
            if not isinstance(obj, dict):
                why = f"{path}:{n}: expected a JSON object, got {type(obj).__name__}"
                yield n, Reject(f"line:{n}", "bad_json", why)
                continue
            yield n, obj


def _lookup(obj: Mapping[str, Any], name: str, mapping: Mapping[str, str]) -> tuple[str | None, Any]:
    if name in mapping:
        return mapping[name], obj.get(mapping[name])
    for alias in FIELD_ALIASES.get(name, (name,)):
        if alias in obj:
            return alias, obj[alias]
    return None, None


def parse_record(obj: Mapping[str, Any], kind: type[R], *, where: str, default_id: str,
                 mapping: Mapping[str, str] | None = None, fields_key: str = "data.fields") -> R | Reject:
    """Build a Problem/Trace/Pair from one JSON object, or a Reject naming the file:line and field at fault.

    `fields_key` is the config key that maps field names for this caller (the fix the reject message names)."""
    mapping = mapping or {}
    used: set[str] = set()
    src, rid = _lookup(obj, "id", mapping)
    rid = default_id if rid is None or rid == "" else str(rid)
    if src:
        used.add(src)
    values: dict[str, Any] = {}
    for name in (*kind.REQUIRED, *kind.OPTIONAL):
        src, value = _lookup(obj, name, mapping)
        if src is None or value is None:
            if name in kind.REQUIRED:
                tried = mapping.get(name) or "/".join(FIELD_ALIASES.get(name, (name,)))
                return Reject(rid, "missing_field", f"{where}: field {name!r} missing (looked for {tried}; "
                              f"map it with {fields_key}.{name}=<field>)")
            continue
        used.add(src)
        if name == "gold_answer" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            why = f"{where}: field {src!r} ({name}) must be a string, got {type(value).__name__}"
            return Reject(rid, "bad_type", why)
        values[name] = value
    if "gold_answer" in values:
        from dlcot.answers import normalize_gold

        values["gold_answer"] = normalize_gold(values["gold_answer"])
    extra = {k: v for k, v in obj.items() if k not in used}
    return kind(id=rid, extra=extra, **values)


def read_records(path: str | Path, kind: type[R], mapping: Mapping[str, str] | None = None,
                 limit: int | None = None, fields_key: str = "data.fields") -> Iterator[R | Reject]:
    """Stream records of `kind` from JSONL, yielding a Reject for every unusable line (never stopping).

    Ids missing from the source become `<file stem>/<line>`; a repeated id is rejected as `duplicate_id`.
    """
    path = Path(path)
    seen: set[str] = set()
    for count, (n, obj) in enumerate(read_jsonl(path)):
        if limit is not None and count >= limit:
            return
        rec = obj if isinstance(obj, Reject) else parse_record(
            obj, kind, where=f"{path}:{n}", default_id=f"{path.stem}/{n - 1}", mapping=mapping, fields_key=fields_key)
        if not isinstance(rec, Reject):
            if rec.id in seen:
                rec = Reject(rec.id, "duplicate_id", f"{path}:{n}: id {rec.id!r} already seen earlier in the file")
            else:
                seen.add(rec.id)
        yield rec


class Counted(Iterator[Any]):
    """The input counter every stage's `n_input` comes from: wraps the stream of records a stage reads (rejects
    included) and counts what it yields, so `n_input` is what was read, never what was written."""

    def __init__(self, records: Iterable[Any]):
        self._it = iter(records)
        self.n = 0

    def __next__(self) -> Any:
        item = next(self._it)
        self.n += 1
        return item


def check_accounting(where: str | Path, n_input: int, n_kept: int, n_rejected: int) -> None:
    """Raise unless every input record is either kept or rejected exactly once (n_input = n_kept + n_rejected)."""
    if n_input != n_kept + n_rejected:
        raise RecordError(f"read {n_input} input records but the outputs hold {n_kept} kept + {n_rejected} "
                          f"rejected = {n_kept + n_rejected}: records were lost or written twice; rerun into a new "
                          "output=", path=where)


# ------------------------------------------------------------------------------------------------ writing
def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a whole file so that readers see either the old or the new content, never a torn one."""
    _atomic_write(path, [text])


def _atomic_write(path: str | Path, chunks: Iterable[str]) -> int:
    """Stream `chunks` into a temporary sibling, then rename it over `path`; returns the number of chunks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    n = 0
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get what open() would give (0644 usually)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(chunk)
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def json_line(row: Mapping[str, Any] | Any) -> str:
    """One JSONL line of a row (Problem/Trace flattened with `to_json_dict`, other dataclasses with `asdict`)."""
    if not isinstance(row, Mapping):
        row = to_json_dict(row) if isinstance(row, (Trace, Problem)) else asdict(row)
    return json.dumps(row, ensure_ascii=False, default=str) + "\n"


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any] | Any]) -> int:
    """Write all rows atomically; returns the number written. Through a temporary file, never `<path>.partial`:
    that name belongs to a resumable stage, and a kill here must not leave a file a rerun would resume from."""
    return _atomic_write(path, map(json_line, rows))


def reopen_committed(*paths: str | Path) -> None:
    """Outputs committed together (kept + rejected): when a kill landed between their commits, some are final and
    some still partial. Move the final ones back to `.partial`, so the rerun resumes all of them."""
    pairs = [(Path(p), Path(p).with_name(Path(p).name + ".partial")) for p in paths]
    if any(partial.exists() for _, partial in pairs):
        for final, partial in pairs:
            if final.exists() and not partial.exists():
                os.replace(final, partial)


class ResumableJsonl:
    """Append-only JSONL output that commits atomically and resumes after a crash.

    Lines go to `<path>.partial`, flushed one record at a time; `commit()` renames it to `path`. Opening with
    `resume=True` keeps a leftover partial file (minus a torn last line) and exposes the ids already written in
    `done_ids`; with `resume=False` any leftover is discarded.
    """

    def __init__(self, path: str | Path, *, resume: bool = True, id_field: str = "id"):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done_ids: set[str] = set()
        self.done_reasons: Counter[tuple[str, str]] = Counter()  # (id, reason) of reject rows recovered
        self.n_written = 0
        if resume and self.partial.exists():
            self._recover(id_field)
        else:
            self.partial.unlink(missing_ok=True)
        self._fh = self.partial.open("a", encoding="utf-8")

    def _recover(self, id_field: str) -> None:
        data = self.partial.read_bytes()
        keep = data[: data.rfind(b"\n") + 1]  # a line without its newline was torn by the crash
        if len(keep) != len(data):
            self.partial.write_bytes(keep)
        for line in keep.decode("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                self.done_ids.add(str(row.get(id_field)))
                if "reason" in row:
                    self.done_reasons[(str(row.get(id_field)), str(row["reason"]))] += 1
                self.n_written += 1

    def write(self, row: Mapping[str, Any] | Any) -> None:
        self._fh.write(json_line(row))
        self._fh.flush()
        self.n_written += 1

    def commit(self) -> Path:
        self._fh.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> ResumableJsonl:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.close()  # keep the partial file for resume


# ------------------------------------------------------------------------------------------------ datasets
def to_dataset(records: Iterable[Problem | Trace | Mapping[str, Any]]):
    """A `datasets.Dataset` of flat JSON dicts (what TRL trainers and `datasets.map` consume)."""
    from datasets import Dataset

    rows = [r if isinstance(r, Mapping) else to_json_dict(r) for r in records]
    return Dataset.from_list(rows)


def from_dataset(ds: Iterable[Mapping[str, Any]], kind: type[R], mapping: Mapping[str, str] | None = None,
                 name: str = "dataset", fields_key: str = "data.fields") -> Iterator[R | Reject]:
    """Records from a `datasets.Dataset` (or any iterable of dicts), with the same rejects as `read_records`."""
    seen: set[str] = set()
    for i, row in enumerate(ds):
        rec = parse_record(row, kind, where=f"{name}[{i}]", default_id=f"{name}/{i}", mapping=mapping,
                           fields_key=fields_key)
        if not isinstance(rec, Reject):
            if rec.id in seen:
                rec = Reject(rec.id, "duplicate_id", f"{name}[{i}]: id {rec.id!r} already seen")
            seen.add(rec.id)
        yield rec
