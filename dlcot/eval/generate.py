"""Generate and score in chunks, appending to predictions.jsonl so a rerun resumes where the last one stopped.

Resume is by sample (`uid` = id#sample): a problem is redone only if one of its n samples is missing, and since
engines seed each sample by (seed, id, sample) the redone samples equal what the crashed run would have written.
A finished predictions.jsonl is reopened for appending, so rerunning a finished eval generates nothing and a
larger `eval.n` or `eval.limit` only generates what is new.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dlcot.answers import AnswerChecker
from dlcot.data.benchmarks import format_prompt
from dlcot.engines.base import Engine
from dlcot.eval.score import score, uid
from dlcot.records import Problem, Reject, ResumableJsonl

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    n: int
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int


@dataclass
class GenerationRun:
    n_generated: int  # problems generated in this call (0 on a rerun of a finished eval)
    seconds: float
    rejects: list[Reject]  # problems the engine had no response for (replay)


def generate_predictions(problems: Sequence[Problem], engine: Engine, sampling: Sampling, path: Path, *,
                         template: str, chat: bool, system_prompt: str | None, checker: AnswerChecker,
                         chunk_size: int = 64, breakdown: Sequence[str] = (), grading: str = "convention",
                         truncated: str = "grade") -> GenerationRun:
    partial = path.with_name(path.name + ".partial")
    if path.exists() and not partial.exists():
        os.replace(path, partial)  # reopen a finished file for appending
    out = ResumableJsonl(path, resume=True, id_field="uid")
    todo = [p for p in problems if any(uid(p.id, j) not in out.done_ids for j in range(sampling.n))]
    if len(todo) < len(problems):
        log.info("resuming: %d of %d problems already answered", len(problems) - len(todo), len(problems))
    rejects: list[Reject] = []
    start = time.perf_counter()
    try:
        for i in tqdm(range(0, len(todo), chunk_size), desc="eval", unit="chunk", disable=len(todo) <= chunk_size):
            chunk = todo[i:i + chunk_size]
            texts = [format_prompt(template, p) for p in chunk]
            prompts = engine.chat(texts, system_prompt) if chat else texts
            completions = engine.generate(prompts, n=sampling.n, max_new_tokens=sampling.max_new_tokens,
                                          temperature=sampling.temperature, top_p=sampling.top_p,
                                          stop=sampling.stop, seed=sampling.seed, keys=[p.id for p in chunk])
            for p, cs in zip(chunk, completions, strict=True):
                missing = [j for j, c in enumerate(cs) if c.finish_reason == "missing"]
                if missing:
                    rejects.append(Reject(p.id, "no_response", f"engine={engine.name} has no stored response for "
                                          f"problem {p.id!r} (samples {missing})"))
            for row in score(chunk, completions, checker, breakdown, grading=grading, truncated=truncated):
                if row["uid"] not in out.done_ids:
                    out.write(row)
    except BaseException:
        out.close()  # keep the partial file for the next run
        raise
    out.commit()
    return GenerationRun(len(todo), time.perf_counter() - start, rejects)
