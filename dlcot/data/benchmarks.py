"""Benchmarks as config (conf/benchmark/*.yaml): where the rows come from and how a row becomes a prompt.

A benchmark reads a local JSONL file when `path` exists (tried from the current directory, then from the
repository root, so the defaults find `../shared/data/problems/*` here) and otherwise its `hub_name` (GPU
clusters). Rows go through `dlcot.records` (field mapping, `normalize_gold` for GSM8K's `#### N` and boxed gold),
so a row without gold becomes a counted `Reject`, never a silent skip. Multiple-choice rows (GPQA) get their
options shuffled with an RNG seeded by the row id and a letter as gold. `synthetic` is the held-out tail of
dlcot.data.synthetic's problems.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

from omegaconf import DictConfig

from dlcot.config import REPO_ROOT, to_dict
from dlcot.errors import ConfigError
from dlcot.records import Problem, Reject, from_dataset, read_records

log = logging.getLogger(__name__)
LETTERS = "ABCDEFGHIJ"


def resolve_path(path: str | None) -> Path | None:
    """An existing file at `path` (absolute, from the current directory, or from the repository root)."""
    if not path:
        return None
    for candidate in (Path(path), REPO_ROOT / path):
        if candidate.is_file():
            return candidate
    return None


def load_benchmark(bench: DictConfig, *, data: DictConfig, seed: int, limit: int | None = None
                   ) -> tuple[list[Problem], list[Reject], str]:
    """(problems, rejects, source description) for one benchmark config."""
    if bench.kind == "synthetic":
        from dlcot.data.sources import synthetic_problems

        count = limit or data.heldout or 100
        probs = synthetic_problems(data, seed, start=data.n_problems, count=count)
        return probs, [], f"dlcot.data.synthetic seed={seed} problems {data.n_problems}..{data.n_problems + count - 1}"
    if bench.kind == "heldout":  # problems held out of a released dataset's every file (dlcot.data.llamafactory)
        from dlcot.data.llamafactory import heldout_problems

        probs, source = heldout_problems(data, limit)
        return probs, [], source
    mapping = to_dict(bench.fields)
    if bench.kind == "multiple_choice":
        if len(bench.choices) < 2:
            raise ConfigError(f"benchmark={bench.name}: multiple_choice needs benchmark.choices (>= 2 fields, "
                              "the correct one first)")
        mapping["gold_answer"] = bench.choices[0]
    local = resolve_path(bench.path)
    if local is not None:
        rows = list(read_records(local, Problem, mapping, limit=limit, fields_key="eval.benchmark.fields"))
        source = str(local)
    elif bench.hub_name:
        from datasets import load_dataset  # needs the Hugging Face Hub (GPU clusters)

        try:
            ds = load_dataset(bench.hub_name, bench.hub_config, split=bench.split)
        except Exception as err:  # offline, gated, renamed: say which benchmark and what to do
            raise ConfigError(f"benchmark={bench.name}: local file {bench.path!r} not found and Hub dataset "
                              f"{bench.hub_name!r} could not be loaded ({err}); pass eval.benchmark.path=FILE") from err
        if limit:
            ds = ds.select(range(min(limit, len(ds))))
        rows = list(from_dataset(ds, Problem, mapping, name=bench.name, fields_key="eval.benchmark.fields"))
        source = f"hub:{bench.hub_name}" + (f"/{bench.hub_config}" if bench.hub_config else "") + f":{bench.split}"
    else:
        raise ConfigError(f"benchmark={bench.name}: no local file at {bench.path!r} (tried from {Path.cwd()} and "
                          f"{REPO_ROOT}) and no hub_name; pass eval.benchmark.path=FILE")
    problems, rejects = [], []
    for rec in rows:
        if isinstance(rec, Reject):
            rejects.append(rec)
        elif not rec.gold_answer.strip():
            rejects.append(Reject(rec.id, "empty_gold", f"{source}: row {rec.id!r} has an empty gold answer"))
        else:
            problems.append(_as_multiple_choice(rec, bench.choices[1:]) if bench.kind == "multiple_choice" else rec)
    if not problems:
        raise ConfigError(f"benchmark={bench.name}: no usable rows in {source} ({len(rejects)} rejected, e.g. "
                          f"{rejects[0].detail if rejects else 'empty file'})")
    log.info("benchmark %s: %d problems, %d rejected, from %s", bench.name, len(problems), len(rejects), source)
    return problems, rejects, source


def _as_multiple_choice(rec: Problem, wrong_fields: list[str]) -> Problem:
    """Options shuffled by a per-id RNG; gold becomes the correct option's letter."""
    options = [rec.gold_answer, *(str(rec.extra.get(f, "")).strip() for f in wrong_fields)]
    order = list(range(len(options)))
    random.Random(f"dlcot.eval.choices:{rec.id}").shuffle(order)
    letter = LETTERS[order.index(0)]
    text = "\n".join(f"{LETTERS[i]}) {options[o]}" for i, o in enumerate(order))
    return Problem(rec.id, rec.problem, letter, extra={**rec.extra, "choices": text, "gold_text": rec.gold_answer})


def format_prompt(template: str, problem: Problem) -> str:
    """The user message for a problem. Any row field can appear in the template (`{problem}`, `{choices}`,
    `{subject}`); a row whose text already ends with the template's instruction (AIME's QwQ copy) is used as is."""
    instruction = template.replace("{problem}", "").strip()
    if "{" not in instruction.replace("{{}}", "") and instruction.replace("{{}}", "{}") in problem.problem:
        return problem.problem
    try:
        return template.format_map({**problem.extra, "problem": problem.problem})
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(f"benchmark prompt_template {template!r}: cannot fill {err} from row {problem.id!r} "
                          "(fields: problem, " + ", ".join(problem.extra) + ")") from err
