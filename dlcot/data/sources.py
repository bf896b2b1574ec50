"""Where problems and traces come from: the synthetic generator, local JSONL/parquet, or a Hub dataset.

Every source yields `Problem`/`Trace` records or `Reject`s through `dlcot.records`, so field mapping
(`data.fields.<name>=<field>`) and rejects behave the same whatever the source. A data config with `format`
(conf/data/openthoughts.yaml, openr1_math, ...) reads its dataset's own schema through `dlcot.data.adapters`.
Hub reads with `data.limit` stream and cache the rows they read (`hub_rows`).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from omegaconf import DictConfig

from dlcot.config import to_dict
from dlcot.errors import ConfigError, RecordError
from dlcot.records import (
    INPUT_REASONS,
    Counted,
    Problem,
    R,
    Reject,
    ResumableJsonl,
    Trace,
    atomic_write_json,
    atomic_write_text,
    from_dataset,
    read_jsonl,
    read_records,
)

log = logging.getLogger(__name__)


def synthetic_problems(data: DictConfig, seed: int, start: int = 0, count: int | None = None) -> list[Problem]:
    """Problems `start .. start+count` of the deterministic synthetic generator (prefix-stable in n)."""
    from dlcot.data.synthetic_problems import generate_problems

    count = data.n_problems if count is None else count
    probs = generate_problems(start + count, seed, min_steps=data.min_steps, max_steps=data.max_steps,
                              max_operand=data.max_operand)[start:]
    return [Problem(id=p.id, problem=p.problem, gold_answer=p.gold_answer, extra={"difficulty": p.difficulty})
            for p in probs]


def _file_rows(path: Path, name: str, limit: int | None) -> Iterator[tuple[str, dict | Reject]]:
    """(default id, row) of a local JSONL or parquet file, for the format adapters."""
    if path.suffix == ".parquet":
        from datasets import Dataset

        rows: Iterator = iter(Dataset.from_parquet(str(path)))
        yield from ((f"{name}/{i}", row) for i, row in enumerate(itertools.islice(rows, limit)))
        return
    for count, (n, obj) in enumerate(read_jsonl(path)):
        if limit is not None and count >= limit:
            return
        yield f"{name}/{n - 1}", obj


def hub_cache_path(data: DictConfig) -> Path:
    """Where the first `data.limit` rows of a Hub dataset are kept after one streaming read."""
    root = Path(data.cache_dir or os.environ.get("DLCOT_CACHE", "~/.cache/dlcot")).expanduser() / "hub"
    key = "--".join(str(x).replace("/", "__") for x in (data.hub_name, data.hub_config or "default", data.split))
    return root / key / f"first{data.limit}.jsonl"


def hub_rows(data: DictConfig) -> Iterator[dict]:
    """Rows of `data.hub_name`. With `data.limit` the dataset is streamed (only the shards holding those rows are
    read, no full download) and the rows are cached as JSONL, so a rerun needs no Hub at all; without a limit it
    is loaded whole (and cached by `datasets` itself)."""
    from datasets import load_dataset  # GPU clusters: needs the Hugging Face Hub

    if not data.limit:
        yield from load_dataset(data.hub_name, data.hub_config, split=data.split)
        return
    cache = hub_cache_path(data)
    if cache.is_file():
        yield from (obj for _, obj in read_jsonl(cache))
        return
    try:
        stream = load_dataset(data.hub_name, data.hub_config, split=data.split, streaming=True)
        rows = list(itertools.islice(iter(stream), data.limit))
    except Exception as err:  # offline, gated, renamed: say which dataset and what to do
        raise ConfigError(f"data={data.name}: Hub dataset {data.hub_name!r} could not be read ({err}); pass "
                          "data.path=FILE for a local copy") from err
    atomic_write_text(cache, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
    yield from rows


def load_records(data: DictConfig, kind: type[R], path: str | None = None) -> Iterator[R | Reject]:
    """Records of `kind` from `path` (a command's `input=`) or the data group's local file / Hub dataset.
    With `data.format` rows go through that dataset's adapter (`dlcot.data.adapters`)."""
    path = path or data.path
    if data.format:
        from dlcot.data.adapters import adapt, options

        if path:
            rows = _file_rows(Path(path), data.name, data.limit)
        elif data.source == "hub" and data.hub_name:
            rows = ((f"{data.name}/{i}", r) for i, r in enumerate(hub_rows(data)))
        else:
            raise ConfigError(f"data={data.name}: no input — pass data.path=FILE or data.hub_name=NAME")
        traces = adapt(rows, data.format, options(data))
        yield from traces if kind is Trace else _as_problems(traces)
        return
    mapping = to_dict(data.fields)
    if path:
        p = Path(path)
        if p.suffix == ".parquet":
            from datasets import Dataset

            yield from from_dataset(Dataset.from_parquet(str(p)), kind, mapping, name=p.stem)
        else:
            yield from read_records(p, kind, mapping, limit=data.limit)
        return
    if data.source == "llamafactory":  # a released answer-only entry's problems (dlcot.data.llamafactory)
        if kind is not Problem:
            raise ConfigError(f"data={data.name}: released CoT is read by `dlcot train` itself; other stages take "
                              "input=FILE")
        from dlcot.data.llamafactory import training_problems

        yield from training_problems(data)  # type: ignore[misc]
        return
    if data.source == "hub" and data.hub_name:
        yield from from_dataset(hub_rows(data), kind, mapping, name=data.hub_name)
        return
    raise ConfigError(f"data={data.name}: no input — pass input=FILE, data.path=FILE, or data.source=hub "
                      "with data.hub_name=NAME")


def _as_problems(traces: Iterator[Trace | Reject]) -> Iterator[Problem | Reject]:
    """One problem per source row (its first usable trace), for stages that generate their own traces."""
    seen: set[str] = set()
    for rec in traces:
        if isinstance(rec, Reject):
            yield rec
        elif rec.problem not in seen:
            seen.add(rec.problem)
            yield Problem(rec.id, rec.problem, rec.gold_answer)


def traces_file(cfg: DictConfig) -> Path:
    """The data group's traces as one JSONL file (for `enhance` / `train` without `input=` / `train.data=`):
    written once under `<runs_dir>/data/<name>-<hash>/` with rejected.jsonl and stats.json (read, kept,
    rejected by reason), and reused while the data config is unchanged."""
    data = cfg.data
    digest = hashlib.sha256(json.dumps(to_dict(data), sort_keys=True, default=str).encode()).hexdigest()[:8]
    out = Path(cfg.runs_dir) / "data" / f"{data.name}-{digest}"
    if (out / "stats.json").is_file():
        return out / "traces.jsonl"
    reasons: dict[str, int] = {}
    with ResumableJsonl(out / "traces.jsonl", resume=False) as kept, \
            ResumableJsonl(out / "rejected.jsonl", resume=False) as rejected:
        for rec in load_records(data, Trace):
            if isinstance(rec, Reject):
                rejected.write(rec)
                reasons[rec.reason] = reasons.get(rec.reason, 0) + 1
            else:
                kept.write(rec)
    if kept.n_written == 0:
        raise RecordError(f"data={data.name}: no usable trace ({rejected.n_written} rejected: {reasons}); see "
                          f"{out / 'rejected.jsonl'}")
    atomic_write_json(out / "stats.json", {"data": data.name, "n_kept": kept.n_written,
                                           "n_rejected": rejected.n_written, "reject_reasons": reasons})
    log.info("data=%s: %d traces, %d rejected %s → %s", data.name, kept.n_written, rejected.n_written, reasons, out)
    return out / "traces.jsonl"


def work_done_ids(rejects: ResumableJsonl) -> set[str]:
    """Ids a resumed stage rejected after working on them (not input rejects: a duplicate's or a malformed line's
    reject carries the id of a problem that may still be to do)."""
    return {rid for rid, reason in rejects.done_reasons if reason not in INPUT_REASONS}


def pending_problems(cfg: DictConfig, rejects: ResumableJsonl, finished: Callable[[str], bool]
                     ) -> tuple[int, list[Problem]]:
    """(problems read, those not `finished`) from `input=` or the data group, for a stage that resumes: input
    rejects not recorded yet go to `rejects` (counted per (id, reason), so a crash while they were written
    neither repeats nor drops one). `finished` must not count input rejects as done (`work_done_ids`). Raises
    when the source holds no problem at all."""
    source = Counted(load_records(cfg.data, Problem, cfg.input) if cfg.input or cfg.data.source != "synthetic"
                     else synthetic_problems(cfg.data, cfg.seed))
    recorded = Counter({k: v for k, v in rejects.done_reasons.items() if k[1] in INPUT_REASONS})
    todo = []
    for rec in source:
        if isinstance(rec, Reject):
            if recorded[(rec.id, rec.reason)] > 0:
                recorded[(rec.id, rec.reason)] -= 1
            else:
                rejects.write(rec)
        elif not finished(rec.id):
            todo.append(rec)
    if source.n == 0:
        raise RecordError("no problems to read", path=cfg.input or cfg.data.path)
    return source.n, todo
