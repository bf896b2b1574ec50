"""`dlcot segment` and `dlcot enhance`: thin glue from the composed config to the pipeline (docs/architecture.md §3)."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlcot import rundir
from dlcot.config import prepare_run_dir, to_dict
from dlcot.enhance import report, stats
from dlcot.enhance.pipeline import RunResult, Settings, enhance_one, run_stream, segment_one
from dlcot.errors import ConfigError, RecordError
from dlcot.records import atomic_write_json, read_jsonl
from dlcot.schema import EnhanceConfig

log = logging.getLogger(__name__)


def settings_from(cfg: DictConfig, *, tokenizer: bool = True) -> Settings:
    """Worker settings from the `enhance` group and the top-level `tokenizer`."""
    enhance = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EnhanceConfig), cfg.enhance))
    return Settings.of(enhance, tokenizer=cfg.tokenizer if tokenizer else "", runs_dir=str(cfg.runs_dir))


def _limit(cfg: DictConfig) -> int | None:
    """`data.limit`, unless the input came from a dataset config, where it already counted source rows."""
    return None if not cfg.get("input") and cfg.data.get("format") else cfg.data.limit


def _input(cfg: DictConfig, command: str) -> str:
    if not cfg.get("input") and cfg.data.get("format"):  # `data=openthoughts`: the dataset's traces (#15)
        from dlcot.data.sources import traces_file

        return str(traces_file(cfg))
    if not cfg.get("input"):
        raise ConfigError(f"dlcot {command} needs input=FILE (a traces JSONL; fields map with data.fields.<name>=...)")
    return str(cfg.input)


def _check_result(res: RunResult, where: Path, input_path: str) -> None:
    if res.n_input == 0:
        raise RecordError("no traces in the input (empty file?)", path=input_path)
    if res.n_kept == 0:
        raise RecordError(f"no trace could be used; reasons in {where}", path=input_path)


def segment(cfg: DictConfig) -> Path:
    """`dlcot segment input=F output=F2`: F2 gets one segmentation per trace (gold format, with outcomes);
    traces that cannot be segmented go to F2's sibling `<stem>.rejected.jsonl`, counts to `<stem>.stats.json`."""
    src = _input(cfg, "segment")
    if not cfg.get("output"):
        raise ConfigError("dlcot segment needs output=FILE (one segmentation per line)")
    out = rundir.check_output(cfg.output, kind="file")
    rundir.lock(out.parent, f".{out.name}.lock")
    rejected = out.with_name(out.stem + ".rejected.jsonl")
    res = run_stream(segment_one, src, out, rejected, replace(settings_from(cfg, tokenizer=False), judge_all=True),
                     fields=to_dict(cfg.data.fields), limit=_limit(cfg), workers=cfg.enhance.workers,
                     desc="segment")
    log.info("segmented %d of %d traces (%d rejected → %s)", res.n_kept, res.n_input, res.n_rejected, rejected)
    reasons = Counter(row["reason"] for _, row in read_jsonl(rejected) if isinstance(row, dict))
    atomic_write_json(out.with_name(out.stem + ".stats.json"), {
        "n_input": res.n_input, "n_kept": res.n_kept, "n_rejected": res.n_rejected,
        "reject_reasons": dict(sorted(reasons.items()))})
    _check_result(res, rejected, src)
    return out


def enhance(cfg: DictConfig) -> Path:
    """`dlcot enhance input=F output=DIR [enhance=POLICY] [tokenizer=...]` (outputs: see docs/architecture.md §3)."""
    src = _input(cfg, "enhance")
    settings = settings_from(cfg)
    from dlcot.tokens import load_tokenizer, qwen2_tokenizer_dir

    # A bad tokenizer name fails here, before any work. `qwen2` and a local directory are only checked: loading
    # (~6 s of CPU) happens in run_stream while the workers run; any other name (the Hub) is loaded now.
    if settings.tokenizer == "qwen2":
        qwen2_tokenizer_dir()
    elif not Path(settings.tokenizer).is_dir():
        load_tokenizer(settings.tokenizer)
    out = prepare_run_dir(cfg)
    res = run_stream(enhance_one, src, out / "enhanced.jsonl", out / "rejected.jsonl", settings,
                     fields=to_dict(cfg.data.fields), limit=_limit(cfg), workers=cfg.enhance.workers)
    st, lengths = stats.compute(out, n_input=res.n_input, tokenizer=settings.tokenizer, policy=cfg.enhance.name,
                                backend=settings.backend, marks_error_spans=settings.backend != "offline")
    atomic_write_json(out / "stats.json", st)
    overrides = " ".join(f"{k}={v}" for k, v in (("input", src), ("output", out), ("enhance", cfg.enhance.name),
                                                   ("tokenizer", settings.tokenizer)))
    report.write(out, st, lengths, command=f"dlcot enhance {overrides}")
    log.info("kept %d of %d traces; token reduction %.1f%% (%s); answer preserved %s", st["n_kept"], st["n_input"],
             100 * st["token_reduction"], settings.tokenizer, st["answer_preserved"])
    _check_result(res, out / "rejected.jsonl", src)
    return out
