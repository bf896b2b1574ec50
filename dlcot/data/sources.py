"""Where problems and traces come from: the synthetic generator, local JSONL/parquet, or a Hub dataset.

Every source yields `Problem`/`Trace` records or `Reject`s through `dlcot.records`, so field mapping
(`data.fields.<name>=<field>`) and rejects behave the same whatever the source.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from omegaconf import DictConfig

from dlcot.config import to_dict
from dlcot.errors import ConfigError, RecordError
from dlcot.records import INPUT_REASONS, Counted, Problem, R, Reject, ResumableJsonl, from_dataset, read_records


def synthetic_problems(data: DictConfig, seed: int, start: int = 0, count: int | None = None) -> list[Problem]:
    """Problems `start .. start+count` of the deterministic synthetic generator (prefix-stable in n)."""
    from dlcot.data.synthetic import generate_problems

    count = data.n_problems if count is None else count
    probs = generate_problems(start + count, seed, min_steps=data.min_steps, max_steps=data.max_steps,
                              max_operand=data.max_operand)[start:]
    return [Problem(id=p.id, problem=p.problem, gold_answer=p.gold_answer, extra={"difficulty": p.difficulty})
            for p in probs]


def load_records(data: DictConfig, kind: type[R], path: str | None = None) -> Iterator[R | Reject]:
    """Records of `kind` from `path` (a command's `input=`) or the data group's local file / Hub dataset."""
    mapping = to_dict(data.fields)
    path = path or data.path
    if path:
        p = Path(path)
        if p.suffix == ".parquet":
            from datasets import Dataset

            yield from from_dataset(Dataset.from_parquet(str(p)), kind, mapping, name=p.stem)
        else:
            yield from read_records(p, kind, mapping, limit=data.limit)
        return
    if data.source == "hub" and data.hub_name:
        from datasets import load_dataset  # GPU clusters: needs the Hugging Face Hub

        ds = load_dataset(data.hub_name, data.hub_config, split=data.split)
        if data.limit:
            ds = ds.select(range(min(data.limit, len(ds))))
        yield from from_dataset(ds, kind, mapping, name=data.hub_name)
        return
    raise ConfigError(f"data={data.name}: no input — pass input=FILE, data.path=FILE, or data.source=hub "
                      "with data.hub_name=NAME")


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
