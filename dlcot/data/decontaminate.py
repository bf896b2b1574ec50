"""`dlcot decontaminate`: drop training traces whose problem overlaps the benchmarks a student is evaluated on.

The test is open-r1's (scripts/decontaminate.py, after s1's decontaminate_util.py): lowercase, collapse
whitespace, split into words, and call a training problem contaminated when any of its word 8-grams
(`decontaminate.ngram`) is an 8-gram of a benchmark problem. Problems shorter than n words have no n-gram; for
those dlcot also drops an exact (normalised) match, which the n-gram test cannot see. Every drop goes to
`rejected.jsonl` with the benchmark, the benchmark row and the shared n-gram, so a user can audit it; input
lines that are not traces are rejected there too, and `stats.json` counts read = kept + rejected.

Input: `input=TRACES.jsonl` (any trace file: traces.jsonl, enhanced.jsonl) or, without it, the data group's traces
(`data=openthoughts`). Output: `<output>/traces.jsonl` in the input's own fields, the file `train.data` or
`enhance input=` reads next; in a recipe, a `decontaminate` stage goes before `enhance` / `train`.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlcot.config import CONF_DIR, list_options, prepare_run_dir, to_dict
from dlcot.errors import ConfigError, RecordError
from dlcot.records import Reject, ResumableJsonl, Trace, atomic_write_json, read_jsonl, read_records, to_json_dict

log = logging.getLogger(__name__)


def normalize(text: str) -> str:
    """open-r1's normalisation: lowercase, whitespace runs collapsed to one space."""
    return " ".join(text.lower().split())


def word_ngrams(text: str, n: int) -> set[str]:
    words = normalize(text).split()
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


class Index:
    """The n-grams (and, for short problems, the whole normalised texts) of the chosen benchmarks."""

    def __init__(self, n: int):
        self.n = n
        self.grams: dict[str, tuple[str, str]] = {}  # n-gram -> (benchmark, row id), first seen
        self.short: dict[str, tuple[str, str]] = {}  # normalised text of problems under n words

    def add(self, benchmark: str, rid: str, text: str) -> None:
        grams = word_ngrams(text, self.n)
        for g in grams:
            self.grams.setdefault(g, (benchmark, rid))
        if not grams:
            self.short.setdefault(normalize(text), (benchmark, rid))

    def match(self, text: str) -> tuple[str, str, str] | None:
        """(benchmark, row id, shared n-gram or text) of the first overlap, or None."""
        norm = normalize(text)
        if norm in self.short:
            return (*self.short[norm], norm)
        for g in sorted(word_ngrams(text, self.n)):  # sorted: the reported n-gram does not vary between runs
            if g in self.grams:
                return (*self.grams[g], g)
        return None


def benchmark_config(name: str) -> DictConfig:
    """conf/benchmark/NAME.yaml as a typed BenchmarkConfig node."""
    from dlcot.schema import BenchmarkConfig

    path = CONF_DIR / "benchmark" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"decontaminate.benchmarks: unknown benchmark {name!r} (known: "
                          f"{', '.join(list_options('benchmark'))})")
    return OmegaConf.merge(OmegaConf.structured(BenchmarkConfig), OmegaConf.load(path))


def build_index(cfg: DictConfig) -> tuple[Index, dict[str, str]]:
    """The index of `decontaminate.benchmarks` and where each benchmark was read from."""
    from dlcot.data.benchmarks import load_benchmark

    dec = cfg.decontaminate
    index, sources = Index(dec.ngram), {}
    for name in dec.benchmarks:
        problems, _, source = load_benchmark(benchmark_config(name), data=cfg.data, seed=cfg.seed)
        for p in problems:
            index.add(name, p.id, p.problem)
        sources[name] = source
    return index, sources


def _inputs(cfg: DictConfig) -> tuple[Path, Iterable[tuple[dict | Reject, Trace | Reject]]]:
    """(input path, (raw row, parsed trace) pairs): the raw row is what a kept line writes back unchanged."""
    if cfg.get("input"):
        path = Path(cfg.input)
    elif cfg.data.get("format"):
        from dlcot.data.sources import traces_file

        path = traces_file(cfg)
    else:
        raise ConfigError("dlcot decontaminate needs input=TRACES.jsonl or a dataset config (data=openthoughts)")
    if not path.is_file():
        raise RecordError("no such file", path=path)
    rows = (obj for _, obj in read_jsonl(path))
    recs = read_records(path, Trace, to_dict(cfg.data.fields))
    return path, zip(rows, recs, strict=True)


def run(cfg: DictConfig) -> Path:
    """The `dlcot decontaminate` command."""
    index, sources = build_index(cfg)  # benchmarks first: a missing one fails before any output is written
    path, pairs = _inputs(cfg)
    out = prepare_run_dir(cfg)
    reasons: Counter[str] = Counter()
    per_benchmark: Counter[str] = Counter()
    with ResumableJsonl(out / "traces.jsonl", resume=False) as kept, \
            ResumableJsonl(out / "rejected.jsonl", resume=False) as rejected:
        for row, rec in pairs:
            if isinstance(rec, Reject):
                rejected.write(rec)
                reasons[rec.reason] += 1
                continue
            hit = index.match(rec.problem)
            if hit is None:
                kept.write(row if isinstance(row, dict) else to_json_dict(rec))
                continue
            bench, rid, gram = hit
            rejected.write({"id": rec.id, "reason": "contaminated", "benchmark": bench, "benchmark_id": rid,
                            "overlap": gram, "detail": f"problem shares the {index.n}-gram {gram!r} with {bench} "
                                                      f"row {rid!r}"})
            reasons["contaminated"] += 1
            per_benchmark[bench] += 1
    n_input = kept.n_written + rejected.n_written
    if n_input == 0:
        raise RecordError("no traces in the input (empty file?)", path=path)
    stats = {"input": str(path), "n_input": n_input, "n_kept": kept.n_written, "n_rejected": rejected.n_written,
             "reject_reasons": dict(reasons), "contaminated_by_benchmark": dict(per_benchmark),
             "ngram": index.n, "benchmarks": sources}
    atomic_write_json(out / "stats.json", stats)
    log.info("decontaminate: kept %d of %d traces; %s", kept.n_written, n_input, json.dumps(dict(per_benchmark)))
    return out
