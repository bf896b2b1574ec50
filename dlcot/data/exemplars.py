"""Generation at a granularity level, calibrated on the key-factors release (arXiv 2502.18001): with
`cot.granularity=k` an engine teacher is shown one solved problem *of level k from the released data* and asked to
solve the next problem the same way, so the length and detail of its CoT follow the release's level k rather than
a sentence of ours (`cot.guide=instruction` keeps the instruction sentences of conf/cot/key_factors.yaml).

The exemplar is row `cot.exemplar_row` of the entry `cot.exemplar_entries` names for the format and level
(`bsm/3`, else `cot` with `{level}` filled) in the `cot.exemplar_info` dataset_info.json, so a format sweep shows
the release's own format at that level. An empty entry ("") says the release has no exemplar for that key and
stops the lookup there, so a recipe on another problem set (GSM8K) can switch off the SVAMP defaults rather than
show them. A problem is never its own exemplar (the next row is used instead); the
format instruction sentence comes before it. The answer ends like the exemplar's, with `The answer is N`, and is
kept whole as the trace's reasoning.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from omegaconf import DictConfig

from dlcot.data.llamafactory import load_entry, problem_key, read_array, row_text
from dlcot.errors import ConfigError


@functools.cache
def _solved(info: str, entry: str) -> tuple[tuple[str, str], ...]:
    """(problem, CoT) rows of one released entry, in file order (usable rows only)."""
    e = load_entry(info, entry)
    rows = []
    for i, row in enumerate(read_array(e.path)):
        got = row_text(row, e, str(i)) if isinstance(row, dict) else None
        if isinstance(got, tuple) and got[1].strip():
            rows.append((got[0].strip(), got[1].strip()))
    if not rows:
        raise ConfigError(f"cot.exemplar_entries: {entry!r} has no usable row in {e.path}")
    return tuple(rows)


def uses_exemplar(cot: DictConfig) -> bool:
    """Whether `cot` asks for a released exemplar (a level is set and the guide is `exemplar`)."""
    return cot.granularity is not None and cot.guide == "exemplar"


def exemplar_entry(cot: DictConfig) -> str:
    """The released entry the exemplar of (cot.format, cot.granularity) comes from."""
    entries = dict(cot.exemplar_entries)
    pattern = entries.get(f"{cot.format}/{cot.granularity}") or entries.get(str(cot.format))
    if not cot.exemplar_info or not pattern:
        has = ", ".join(k for k, v in entries.items() if v) or "none"
        raise ConfigError(f"cot.guide=exemplar needs cot.exemplar_info (a dataset_info.json; now "
                          f"{cot.exemplar_info}) and a non-empty cot.exemplar_entries key {cot.format}/"
                          f"{cot.granularity} or {cot.format} (has: {has}); or use cot.guide=instruction")
    return str(pattern).replace("{level}", str(cot.granularity))


def exemplar_rows(cot: DictConfig) -> tuple[tuple[str, str], ...]:
    """The usable (problem, CoT) rows of the exemplar entry; called before a teacher loads, so a level with no
    released exemplar fails at once, not after the model is up."""
    return _solved(str(cot.exemplar_info), exemplar_entry(cot))


def exemplar_for(cot: DictConfig, problem: str) -> tuple[str, str]:
    """(problem, CoT) of the level-`cot.granularity` exemplar to show before `problem`."""
    rows = exemplar_rows(cot)
    start = cot.exemplar_row % len(rows)
    for k in range(len(rows)):
        ex = rows[(start + k) % len(rows)]
        if problem_key(ex[0]) != problem_key(problem):
            return ex
    raise ConfigError(f"cot.exemplar_entries: every row of {exemplar_entry(cot)} is the problem itself "
                      f"({problem[:60]!r})")


def exemplar_prompt(cot: DictConfig, problem: str, render: Callable[[str], str]) -> str:
    """The one-shot prompt: the exemplar (rendered with the teacher's template), then the problem."""
    ex_problem, ex_cot = exemplar_for(cot, problem)
    return (f"Here is a solved example.\n\nQuestion: {render(ex_problem)}\nAnswer: {ex_cot}\n\n"
            "Solve the next question in the same way, giving the same amount of detail in your steps, and end "
            f"the same way.\n\nQuestion: {render(problem)}\nAnswer:")
