"""`dlcot eval model=PATH benchmark=B output=DIR [engine=...] [eval.n=...] [eval.k=[1,4]]`, and `evaluate()`,
the same evaluation callable at the end of a training chain on the model it just saved.

Writes predictions.jsonl (one line per sample), rejected.jsonl (benchmark rows without gold, problems without a
stored response), metrics.json, report.md and plots. Every benchmark row is accounted for:
`n_input = n + n_rejected`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig

from dlcot.answers import AnswerChecker
from dlcot.config import prepare_run_dir, to_dict
from dlcot.data.benchmarks import load_benchmark
from dlcot.engines import Engine, make_engine
from dlcot.errors import ConfigError, RecordError
from dlcot.eval.generate import Sampling, generate_predictions
from dlcot.eval.metrics import compute_metrics
from dlcot.eval.report import write_report
from dlcot.records import atomic_write_json, check_accounting, write_jsonl
from dlcot.tracking import Tracker

log = logging.getLogger(__name__)


def sampling_from(cfg: DictConfig) -> Sampling:
    """eval.* settings where set, else the engine's."""
    ev, en = cfg.eval, cfg.engine
    pick = lambda a, b: b if a is None else a  # noqa: E731
    return Sampling(n=ev.n, max_new_tokens=pick(ev.max_new_tokens, en.max_new_tokens),
                    temperature=pick(ev.temperature, en.temperature), top_p=pick(ev.top_p, en.top_p),
                    stop=tuple(en.stop), seed=cfg.seed)


def evaluate(cfg: DictConfig, model_path: str | Path | None, output_dir: str | Path,
             engine: Engine | None = None) -> Path:
    """Evaluate `model_path` on `cfg.eval.benchmark` into `output_dir` (resumable); returns `output_dir`.
    `engine` overrides the configured one (tests pass a scripted engine built from a function)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ev, bench = cfg.eval, cfg.eval.benchmark
    problems, rejects, source = load_benchmark(bench, data=cfg.data, seed=cfg.seed, limit=ev.limit)
    sampling = sampling_from(cfg)
    _check_same_setup(out, {"model": str(model_path) if model_path else None, "benchmark": to_dict(bench),
                            "engine": cfg.engine.name, "chat": ev.chat, "system_prompt": ev.system_prompt,
                            "grading": ev.grading, "truncated": ev.truncated,
                            "sampling": {**asdict(sampling), "n": None}})
    own_engine = engine is None
    if engine is None:
        engine = make_engine(cfg.engine, model_path=str(model_path) if model_path else None,
                             tokenizer_name=cfg.tokenizer, seed=cfg.seed)
    try:
        with AnswerChecker(ev.checker_workers, ev.checker_timeout_s) as checker:
            run = generate_predictions(problems, engine, sampling, out / "predictions.jsonl",
                                       template=bench.prompt_template, chat=ev.chat, system_prompt=ev.system_prompt,
                                       checker=checker, chunk_size=ev.chunk_size, breakdown=list(bench.breakdown),
                                       grading=ev.grading, truncated=ev.truncated)
    finally:
        if own_engine:
            engine.close()
    rejects += run.rejects
    write_jsonl(out / "rejected.jsonl", rejects)
    wanted = {p.id for p in problems} - {r.id for r in run.rejects}
    rows = [r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())
            if r["id"] in wanted and r["sample"] < sampling.n]
    reasons: dict[str, int] = {}
    for r in rejects:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    if not rows:
        hint = (" (engine=replay matches stored responses by id; engine.match=problem matches them by problem "
                "text)" if cfg.engine.name == "replay" else "")
        raise RecordError(f"no predictions to score: every problem of benchmark {bench.name} ({source}) was "
                          f"rejected ({reasons}){hint}; see {out / 'rejected.jsonl'}")
    metrics = {
        "benchmark": bench.name, "benchmark_source": source, "model": str(model_path) if model_path else None,
        "engine": engine.name, "tokenizer": engine.tokenizer_name, "grading": ev.grading, "truncated": ev.truncated,
        "sampling": {"n": sampling.n, "max_new_tokens": sampling.max_new_tokens, "temperature": sampling.temperature,
                     "top_p": sampling.top_p, "stop": list(sampling.stop), "seed": sampling.seed},
        "n_input": len(problems) + sum(r.reason != "no_response" for r in rejects), "n_rejected": len(rejects),
        "reject_reasons": reasons, "generation_s": round(run.seconds, 3), "problems_generated": run.n_generated,
        **compute_metrics(rows, n=sampling.n, ks=list(ev.k), markers=list(ev.markers),
                          breakdown=list(bench.breakdown)),
    }
    check_accounting(out, metrics["n_input"], metrics["n"], metrics["n_rejected"])  # scored or rejected, once
    atomic_write_json(out / "metrics.json", metrics)
    write_report(out, metrics, rows)
    with Tracker(cfg, out, "eval") as tracker:
        tracker.summary({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    log.info("%s on %s: accuracy %.4f (%s; strict %.4f) over %d problems x %d samples, answerless %.3f, "
             "unmarked %.3f, truncated %.3f, mean %.1f tokens", metrics["model"], bench.name, metrics["accuracy"],
             ev.grading, metrics["accuracy_strict"], metrics["n"], sampling.n, metrics["answerless_rate"],
             metrics["unmarked_rate"], metrics["truncated_rate"], metrics["mean_tokens"])
    return out


def _check_same_setup(out: Path, setup: dict) -> None:
    """Refuse to resume predictions made with another model, benchmark or sampling setup (only `eval.n` and
    `eval.limit` may grow between runs): mixing them would silently corrupt every metric."""
    path = out / "eval_setup.json"
    setup = json.loads(json.dumps(setup))  # tuples → lists, as read back
    if path.exists() and any((out / f).exists() for f in ("predictions.jsonl", "predictions.jsonl.partial")):
        old = json.loads(path.read_text())
        changed = sorted(k for k in setup.keys() | old.keys() if old.get(k) != setup.get(k))
        if changed:
            raise ConfigError(f"{out} holds predictions made with a different {', '.join(changed)}; use another "
                              f"output= or delete {out / 'predictions.jsonl'} to start over")
    atomic_write_json(path, setup)


def run(cfg: DictConfig) -> Path:
    """The `dlcot eval` command: `model=PATH benchmark=B output=DIR` (output defaults to runs/eval/<hash>)."""
    return evaluate(cfg, cfg.model, prepare_run_dir(cfg))
