"""The LLaMA-Factory data format, read as it is: JSON-array files registered in a `dataset_info.json`.

The key-factors paper (arXiv 2502.18001) released its CoT data this way (`{instruction, output}` rows, the output
a teacher's CoT ending in `The answer is N`), so a user of that format trains on it with no conversion:
`data=kf_svamp teacher=gpt4o cot.granularity=3` picks the entry `SVAMP_ChatGPT_level3` through the data group's
`entries` table (or `data.entry=NAME` names any entry), and every row becomes a `Trace`.

Gold answers: the released files carry none. The gold of a row is the answer-only entry's output
(`data.gold_entry`, e.g. `SVAMP_only_ans`) joined on the problem text (whitespace-normalised), else the number the
row states with `The answer is N`; a row with neither is a counted `no_gold` reject. A row whose stated answer
differs from the joined gold is kept (the paper trains on every row) and counted as `answer_mismatch`.

Held-out problems: `data.heldout` problems of the gold entry, chosen by a hash of their text, are removed from
every entry's training rows (counted `heldout` rejects) and are the benchmark `kf_svamp_heldout`, so a student is
never tested on a problem it saw in any file.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dlcot.errors import ConfigError, RecordError
from dlcot.records import Problem, Reject, Trace

# `The answer is 145`, `The answer is: $1,200.50.`, `The answer is 5 - 3 = 2` (the last number of the last such
# statement counts: some released CoTs end with the computation).
_STATED = re.compile(r"[Tt]he (?:final )?answer is:?([^\n]*)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
HELDOUT_SALT = "dlcot.keyfactors.heldout"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One `dataset_info.json` entry: its name, file, and which columns hold the prompt and the response."""
    name: str
    path: Path
    prompt: str = "instruction"
    query: str | None = None  # LLaMA-Factory appends it to the prompt after a newline
    response: str = "output"


# ------------------------------------------------------------------------------------------- files and entries
def read_array(path: str | Path) -> list[Any]:
    """The rows of one JSON-array file; RecordError naming the file when it is missing or not an array."""
    path = Path(path)
    if not path.is_file():
        raise RecordError("no such file", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"not a JSON file ({err})", path=path) from err
    if not isinstance(data, list):
        raise RecordError(f"expected a JSON array of rows (the LLaMA-Factory alpaca format), got a "
                          f"{type(data).__name__}", path=path)
    return data


def dataset_info_path(path: str | Path) -> Path:
    """`dataset_info.json` itself, or the folder holding it."""
    from dlcot.config import REPO_ROOT

    p = Path(path)
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
        p = REPO_ROOT / p  # relative paths in conf/data work from the repository root too
    return p / "dataset_info.json" if p.is_dir() else p


def load_entry(info: str | Path, name: str) -> Entry:
    """Entry `name` of a dataset_info.json; ConfigError naming the closest known names when it is not there."""
    info_path = dataset_info_path(info)
    if not info_path.is_file():
        raise ConfigError(f"data.dataset_info={info}: no dataset_info.json at {info_path}")
    try:
        table = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RecordError(f"not valid JSON ({err})", path=info_path) from err
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=5, cutoff=0.5)
        raise ConfigError(f"unknown dataset {name!r} in {info_path}" + (f" (closest: {', '.join(close)})" if close
                                                                        else f" ({len(table)} entries)"))
    spec = table[name]
    if "file_name" not in spec:
        raise ConfigError(f"{info_path}: entry {name!r} has no file_name (hf_hub_url / script entries are not "
                          "local files; download them and register the file)")
    if spec.get("formatting", "alpaca") != "alpaca":
        raise ConfigError(f"{info_path}: entry {name!r} uses formatting={spec['formatting']!r}; only the "
                          "alpaca (instruction/output) formatting is read")
    cols = spec.get("columns", {})
    return Entry(name=name, path=info_path.parent / spec["file_name"], prompt=cols.get("prompt", "instruction"),
                 query=cols.get("query"), response=cols.get("response", "output"))


def problem_key(text: str) -> str:
    """The join key of a problem across files: its words, whitespace collapsed."""
    return " ".join(text.split())


def stated_answer(text: str) -> str | None:
    """The number the text's last `The answer is ...` ends on (commas dropped, `145.0` → `145`), or None."""
    found = _STATED.findall(text)
    numbers = _NUMBER.findall(re.split(r"\.\s", found[-1], maxsplit=1)[0]) if found else []  # up to the sentence end
    if not numbers:
        return None
    ans = numbers[-1].replace(",", "").replace(" ", "")
    return re.sub(r"\.0+$", "", ans) if "." in ans and "/" not in ans else ans


def row_text(row: dict[str, Any], entry: Entry, where: str) -> tuple[str, str] | Reject:
    """(problem, response) of one row, or a Reject naming the row and the field."""
    values = []
    for field_name in (entry.prompt, entry.response):
        value = row.get(field_name)
        if value is None:
            return Reject(where, "missing_field", f"{entry.path}: row {where}: field {field_name!r} missing "
                          f"(dataset_info columns of {entry.name!r}: prompt={entry.prompt}, response={entry.response})")
        if not isinstance(value, str):
            return Reject(where, "bad_type", f"{entry.path}: row {where}: field {field_name!r} must be a string, "
                          f"got {type(value).__name__}")
        values.append(value)
    problem, response = values
    extra = row.get(entry.query) if entry.query else None
    if isinstance(extra, str) and extra:
        problem = f"{problem}\n{extra}"
    return problem, response


def gold_table(entry: Entry) -> dict[str, str]:
    """Problem key → gold answer from an answer-only entry (its output is the answer). Unusable rows are logged
    and skipped (their problems fall back to `The answer is N`); two different golds for one problem are an error."""
    gold: dict[str, str] = {}
    skipped = 0
    for i, row in enumerate(read_array(entry.path)):
        got = row_text(row, entry, str(i)) if isinstance(row, dict) else None
        if not (isinstance(got, tuple) and got[1].strip()):
            skipped += 1
            continue
        key, answer = problem_key(got[0]), stated_answer(got[1]) or got[1].strip()
        if gold.setdefault(key, answer) != answer:
            raise RecordError(f"row {i}: problem {got[0][:60]!r} has two gold answers ({gold[key]!r}, {answer!r})",
                              path=entry.path)
    if not gold:
        raise RecordError(f"the gold entry {entry.name!r} has no usable row", path=entry.path)
    if skipped:
        log.warning("gold entry %s: %d of %d rows unusable (no problem or empty answer), skipped", entry.name,
                    skipped, skipped + len(gold))
    return gold


def heldout_keys(gold: dict[str, str], n: int) -> list[str]:
    """`n` problem keys, picked by a hash of their text: the same set whichever file or order they come from."""
    return sorted(gold, key=lambda k: hashlib.sha256(f"{HELDOUT_SALT}\x00{k}".encode()).hexdigest())[:n]


def read_traces(entry: Entry, *, gold: dict[str, str] | None = None, heldout: set[str] | frozenset[str] = frozenset(),
                teacher: str | None = None) -> Iterator[Trace | Reject]:
    """Every row of `entry` as a Trace (`reasoning` = the response text as is) or a Reject with its reason.

    Row ids are `<entry>/<row index>`. `extra` records the entry, the answer the row states and whether it agrees
    with the joined gold (`answer_mismatch` rows are kept)."""
    for i, row in enumerate(read_array(entry.path)):
        rid = f"{entry.name}/{i}"
        if not isinstance(row, dict):
            yield Reject(rid, "bad_json", f"{entry.path}: row {i}: expected an object, got {type(row).__name__}")
            continue
        got = row_text(row, entry, rid)
        if isinstance(got, Reject):
            yield got
            continue
        problem, output = got
        key = problem_key(problem)
        if key in heldout:
            yield Reject(rid, "heldout", f"{entry.path}: row {i}: problem held out for evaluation")
            continue
        if not output.strip():
            yield Reject(rid, "empty_output", f"{entry.path}: row {i}: field {entry.response!r} is empty")
            continue
        stated = stated_answer(output)
        joined = (gold or {}).get(key)
        answer = joined or stated
        if not answer:
            yield Reject(rid, "no_gold", f"{entry.path}: row {i}: no gold answer (problem not in the gold entry"
                         " and no `The answer is N` in the output)")
            continue
        yield Trace(id=rid, problem=problem, reasoning=output, gold_answer=answer, teacher=teacher,
                    source=entry.name, extra={"stated_answer": stated,
                                              "answer_mismatch": bool(joined and stated and stated != joined)})


# ------------------------------------------------------------------------------------------- the data group
def entry_name(data: DictConfig, teacher: str, cot: DictConfig) -> tuple[str, bool]:
    """(entry name, whether cot.granularity chose it): `data.entry`, else the `data.entries` pattern for
    (teacher, cot.format, cot.granularity).

    Keys are tried most specific first: `teacher/format/level`, `teacher/format`, `*/format/level`, `*/format`; a
    pattern's `{level}` is filled with `cot.granularity`. A pattern without a level (the human annotation, the
    answer-only file) ignores cot.granularity, and train_stats.json records no level for it."""
    if data.entry:
        return str(data.entry), False
    level = cot.granularity
    keys = [f"{teacher}/{cot.format}/{level}", f"{teacher}/{cot.format}", f"*/{cot.format}/{level}", f"*/{cot.format}"]
    if level is None:
        keys = keys[1::2]
    entries = dict(data.entries)
    key = next((k for k in keys if k in entries), None)
    if key is None:
        known = ", ".join(sorted(entries)) or "none"
        raise ConfigError(f"data={data.name}: no released entry for teacher={teacher} cot.format={cot.format} "
                          f"cot.granularity={level} (data.entries has: {known}); or name one with data.entry=NAME")
    pattern = str(entries[key])
    if "{level}" in pattern:
        if level is None:
            raise ConfigError(f"data={data.name}: entry pattern {pattern!r} (teacher={teacher}, format="
                              f"{cot.format}) needs a level: set cot.granularity=1..6")
        return pattern.replace("{level}", str(level)), True
    return pattern, key.count("/") == 2


def selected_entry(cfg: DictConfig) -> tuple[Entry, dict[str, Any]]:
    """The entry the composed config selects, and what it is (for train_stats.json and the report)."""
    data = cfg.data
    if not data.dataset_info:
        raise ConfigError(f"data={data.name}: source=llamafactory needs data.dataset_info=PATH (dataset_info.json "
                          "or its folder)")
    name, by_level = entry_name(data, cfg.teacher.name, cfg.cot)
    entry = load_entry(data.dataset_info, name)
    answer_only = cfg.cot.format == "answer_only" or name == data.gold_entry
    meta = {"dataset": data.name, "entry": name, "file": str(entry.path),
            "teacher": None if answer_only else cfg.teacher.name,
            "format": "answer_only" if answer_only else cfg.cot.format,
            "granularity": cfg.cot.granularity if by_level and not answer_only else None}
    return entry, meta


def load_gold(data: DictConfig) -> dict[str, str]:
    """The gold table of `data.gold_entry` ({} when the data group names none: gold from `The answer is N`)."""
    return gold_table(load_entry(data.dataset_info, data.gold_entry)) if data.gold_entry else {}


def heldout_set(data: DictConfig, gold: dict[str, str]) -> list[str]:
    """The held-out problem keys of the data group (`data.heldout` of the gold entry's problems)."""
    if data.heldout and not gold:
        raise ConfigError(f"data={data.name}: data.heldout={data.heldout} needs data.gold_entry (the answer-only "
                          "entry whose problems are held out)")
    if data.heldout > len(gold):
        raise ConfigError(f"data={data.name}: data.heldout={data.heldout} > the {len(gold)} problems of "
                          f"{data.gold_entry!r}")
    return heldout_keys(gold, data.heldout)


def training_traces(cfg: DictConfig) -> tuple[Path, Iterator[Trace | Reject], dict[str, Any]]:
    """(file, traces or rejects, what was read) of the entry the config selects, held-out problems removed."""
    entry, meta = selected_entry(cfg)
    gold = load_gold(cfg.data)
    held = heldout_set(cfg.data, gold)
    meta = {**meta, "gold_entry": cfg.data.gold_entry, "heldout": len(held)}
    return entry.path, read_traces(entry, gold=gold, heldout=frozenset(held), teacher=meta["teacher"]), meta


def training_problems(data: DictConfig) -> Iterator[Problem | Reject]:
    """The gold entry's problems minus the held-out ones, with gold: what an engine teacher writes new CoT for
    (`dlcot generate data=kf_svamp cot.granularity=k`)."""
    if not data.dataset_info or not data.gold_entry:
        raise ConfigError(f"data={data.name}: problems to generate for come from data.gold_entry (the answer-only "
                          "entry); set it, or pass input=FILE")
    gold = load_gold(data)
    held = frozenset(heldout_set(data, gold))
    for rec in read_traces(load_entry(data.dataset_info, data.gold_entry), gold=gold, heldout=held):
        yield rec if isinstance(rec, Reject) else Problem(id=rec.id, problem=rec.problem, gold_answer=rec.gold_answer)


def heldout_problems(data: DictConfig, limit: int | None = None) -> tuple[list[Problem], str]:
    """The held-out problems (benchmark kind `heldout`), with gold, in a fixed order; and where they came from."""
    if not data.dataset_info or not data.heldout:
        raise ConfigError(f"benchmark kind heldout needs a data group with held-out problems: data={data.name} has "
                          f"dataset_info={data.dataset_info}, heldout={data.heldout} (use data=kf_svamp)")
    entry = load_entry(data.dataset_info, data.gold_entry)
    gold = load_gold(data)
    keys = heldout_set(data, gold)[:limit] if limit else heldout_set(data, gold)
    texts: dict[str, str] = {}
    for i, row in enumerate(read_array(entry.path)):
        got = row_text(row, entry, str(i)) if isinstance(row, dict) else None
        if isinstance(got, tuple):
            texts.setdefault(problem_key(got[0]), got[0])
    probs = [Problem(id=f"{data.name}/heldout/{hashlib.sha256(k.encode()).hexdigest()[:10]}", problem=texts[k],
                     gold_answer=gold[k]) for k in keys]
    return probs, f"{len(probs)} held-out problems of {entry.name} ({entry.path})"
