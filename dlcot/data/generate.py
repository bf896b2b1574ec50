"""`dlcot generate`: teacher long CoT for problems → `traces.jsonl`, `rejected.jsonl`, `stats.json`.

Two teachers: `teacher=synthetic` writes the embedded default (synthetic problems, R1-style traces with their
true segmentation in `segments.jsonl`, and held-out problems in `heldout.jsonl` for evaluation), and any other
teacher generates through an engine (`engine=vllm|hf|openai`, `teacher.model=...`). Engine output is split at
the thought's closing tag into `reasoning` and `response`; outputs that were cut at max tokens or never close
the thought are rejected with that reason, so the trace file holds only complete teacher CoT.

Engine teachers are asked for CoT of a chosen granularity and format (`cot` group: the key factors of CoT
distillation, arXiv 2502.18001); each trace records both, and `dlcot report` labels the students with them.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from omegaconf import DictConfig
from tqdm import tqdm

from dlcot.answers import split_thought
from dlcot.config import prepare_run_dir, to_dict
from dlcot.data.exemplars import exemplar_prompt, exemplar_rows, uses_exemplar
from dlcot.data.sources import pending_problems, work_done_ids
from dlcot.errors import ConfigError
from dlcot.prompts import fill
from dlcot.records import (
    INPUT_REASONS,
    Reject,
    ResumableJsonl,
    atomic_write_json,
    check_accounting,
    reopen_committed,
    to_json_dict,
    write_jsonl,
)

log = logging.getLogger(__name__)


def cot_instruction(cot: DictConfig) -> str:
    """The format and granularity instructions `cot` selects (empty for the teacher's own CoT; no granularity
    sentence when a released exemplar shows the level, cot.guide=exemplar). Both are keys of the instruction
    mappings, checked at composition (`dlcot.schema.CotConfig.validate`)."""
    parts = [cot.format_instructions[cot.format]]
    if cot.granularity is not None and not uses_exemplar(cot):  # with an exemplar the level is shown, not said
        parts.append(cot.granularity_instructions[cot.granularity])
    return " ".join(p for p in parts if p)


def run(cfg: DictConfig) -> Path:
    instruction = cot_instruction(cfg.cot)
    if (instruction or cfg.cot.granularity is not None) and cfg.teacher.name == "synthetic":
        raise ConfigError("teacher=synthetic writes its own CoT and follows no cot.granularity / cot.format; "
                          "use an engine teacher (teacher.model=..., engine=vllm|hf|openai) for key-factor sweeps")
    if cfg.teacher.name == "synthetic" and cfg.teacher.get("model"):
        raise ConfigError(f"teacher=synthetic writes its traces by rule and would ignore teacher.model="
                          f"{cfg.teacher.model}: choose an engine teacher (e.g. teacher=qwen2_5_72b_instruct)")
    out = prepare_run_dir(cfg)
    stats = _synthetic(cfg, out) if cfg.teacher.name == "synthetic" else _with_engine(cfg, out, instruction)
    atomic_write_json(out / "stats.json", stats)
    log.info("generate: %d traces kept, %d rejected → %s", stats["n_kept"], stats["n_rejected"], out)
    return out


def _synthetic(cfg: DictConfig, out: Path) -> dict:
    from dlcot.data.synthetic import TeacherStyle, teach
    from dlcot.data.synthetic_problems import generate_problems

    if cfg.data.source != "synthetic":
        raise ConfigError("teacher=synthetic can only teach the synthetic generator's problems (data=synthetic); "
                          "use an engine teacher (teacher.model=..., engine=vllm|hf|openai) for other data")
    d = cfg.data
    knobs = {"min_steps": d.min_steps, "max_steps": d.max_steps, "max_operand": d.max_operand}
    problems = generate_problems(d.n_problems + d.heldout, cfg.seed, **knobs)
    style = TeacherStyle(**to_dict(cfg.teacher.style))
    train, heldout = problems[: d.n_problems], problems[d.n_problems:]
    traces = [teach(p, cfg.seed, style) for p in tqdm(train, desc="synthetic teacher", disable=None)]
    write_jsonl(out / "problems.jsonl", (p.to_record() for p in train))
    write_jsonl(out / "heldout.jsonl", (p.to_record() for p in heldout))
    write_jsonl(out / "traces.jsonl", (t.to_trace_record() for t in traces))
    write_jsonl(out / "segments.jsonl", (t.to_segmentation() for t in traces))
    write_jsonl(out / "rejected.jsonl", [])
    return {"teacher": cfg.teacher.name, "n_input": len(train), "n_kept": len(traces), "n_rejected": 0,
            "n_heldout": len(heldout), "n_correct": sum(t.is_correct for t in traces), "reject_reasons": {}}


def _prompt(teacher: DictConfig, cot: DictConfig, problem, instruction: str) -> str:
    if uses_exemplar(cot):  # one released CoT of the level, then the problem (dlcot.data.exemplars)
        shown = exemplar_prompt(cot, problem.problem,
                                lambda q: fill(teacher.prompt_template, "teacher.prompt_template", problem=q))
        return f"{instruction}\n\n{shown}" if instruction else shown
    text = fill(teacher.prompt_template, "teacher.prompt_template", problem=problem.problem)
    return f"{text}\n\n{instruction}" if instruction else text


def _with_engine(cfg: DictConfig, out: Path, instruction: str) -> dict:
    from dlcot.engines import chunk_size, make_engine

    t = cfg.teacher
    if not t.model:
        raise ConfigError(f"teacher={t.name}: set teacher.model=<Hub name or path> to generate with an engine")
    reopen_committed(out / "traces.jsonl", out / "rejected.jsonl")
    traces, rejects = ResumableJsonl(out / "traces.jsonl"), ResumableJsonl(out / "rejected.jsonl")
    done = traces.done_ids | work_done_ids(rejects)

    def sample_ids(pid: str) -> list[str]:
        return [pid] if t.n == 1 else [f"{pid}#{k}" for k in range(t.n)]

    n_input, todo = pending_problems(cfg, rejects, lambda pid: all(tid in done for tid in sample_ids(pid)))
    exemplar = uses_exemplar(cfg.cot)
    if exemplar:
        exemplar_rows(cfg.cot)  # a level without a released exemplar fails here, before the teacher loads
    engine = make_engine(cfg.engine, model_path=t.model, tokenizer_name=cfg.tokenizer, seed=cfg.seed, needs=t)
    try:
        step = chunk_size(cfg.engine)
        for i in tqdm(range(0, len(todo), step), desc=f"teacher {t.name}", disable=None):
            batch = todo[i:i + step]
            prompts = engine.chat([_prompt(t, cfg.cot, p, instruction) for p in batch], t.system_prompt)
            outs = engine.generate(prompts, n=t.n, max_new_tokens=t.max_new_tokens, temperature=t.temperature,
                                   top_p=t.top_p, seed=cfg.seed, keys=[p.id for p in batch])
            for prob, comps in zip(batch, outs, strict=True):
                for tid, comp in zip(sample_ids(prob.id), comps, strict=True):
                    if tid in done:  # written before a crash that cut this problem's samples short
                        continue
                    thought, after = split_thought(comp.text)
                    if not thought and exemplar:  # the release's form: the CoT as is, ending `The answer is N`
                        thought, after = comp.text, ""
                    if comp.finish_reason == "length":
                        rejects.write(Reject(tid, "truncated", f"hit max_new_tokens={t.max_new_tokens}"))
                    elif not thought.strip():
                        rejects.write(Reject(tid, "unclosed_thought", "no </think> in the teacher's output"))
                    else:
                        rec = {**to_json_dict(prob), "id": tid, "reasoning": thought.replace("<think>", "", 1).strip(),
                               "response": after.strip(), "teacher": t.name, "teacher_tokens": comp.n_tokens,
                               "cot_granularity": cfg.cot.granularity, "cot_format": cfg.cot.format}
                        traces.write(rec)
    finally:
        engine.close()
        traces.close()
        rejects.close()
    traces.commit()
    rejects.commit()
    reasons = Counter(json.loads(line)["reason"] for line in (out / "rejected.jsonl").read_text().splitlines())
    n_kept = traces.n_written
    # every problem read is one input reject or t.n samples, each kept or rejected
    n_bad = sum(n for reason, n in reasons.items() if reason in INPUT_REASONS)
    n_samples = n_bad + (n_input - n_bad) * t.n
    check_accounting(out, n_samples, n_kept, sum(reasons.values()))
    return {"teacher": t.name, "cot_granularity": cfg.cot.granularity, "cot_format": cfg.cot.format,
            "n_input": n_samples, "n_problems": n_input, "n_kept": n_kept,
            "n_rejected": sum(reasons.values()), "reject_reasons": dict(reasons), "tokenizer": engine.tokenizer_name}
