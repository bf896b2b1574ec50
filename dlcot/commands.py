"""The command table: every `dlcot <command>`, where its code lives, and how one is composed and run.

Both the command line (`dlcot.cli`) and the orchestration that chains commands (`dlcot.orchestrate`) go through
this module, so neither imports the other. Commands are registered by import path (`module:function`), so
listing them (`dlcot --help`) imports no stage and this module sits below every stage: the function takes the
composed `DictConfig` and returns the path it wrote.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import DictConfig

from dlcot import procs, rundir
from dlcot.config import CONF_DIR, compose, run_dir
from dlcot.errors import DlcotError

COMMANDS: dict[str, tuple[str, str]] = {
    # name: ("module:function", one-line help)
    "eval": ("dlcot.eval.commands:run", "score a model on a benchmark → predictions.jsonl, metrics.json, report.md"),
    "generate": ("dlcot.data.generate:run", "teacher long CoT for problems → traces.jsonl"),
    "decontaminate": ("dlcot.data.decontaminate:run",
                      "drop traces whose problem shares an 8-gram with the benchmarks → traces.jsonl, rejected.jsonl"),
    "segment": ("dlcot.enhance.commands:segment", "DLCoT segmentation of traces → one gold-format line per trace"),
    "enhance": ("dlcot.enhance.commands:enhance", "DLCoT simplification → enhanced.jsonl, stats.json, report, plots"),
    "mcts": ("dlcot.mcts.commands:run", "Marco-o1 v2 MCTS over typed thought nodes → trees, sft.jsonl, pairs.jsonl"),
    "train": ("dlcot.train:run", "SFT on traces or DPO on pairs (train.stage) with TRL → model + train_stats.json"),
    "run": ("dlcot.orchestrate.chain:run", "run a recipe's stages in order (make demo = dlcot run recipe=quickstart)"),
    "report": ("dlcot.orchestrate.report:run", "one table (markdown + CSV + plot) of every run under runs=DIR"),
    "sweep": ("dlcot.orchestrate.sweep:run",
              "a recipe over a grid (-m a=x,y b=u,v), one run per job → sweep.json + report"),
}
# Commands that take the raw overrides: a sweep's `a=x,y` is not one config to compose.
UNCOMPOSED = {"sweep"}


def resolve_command(name: str) -> Callable[..., Path | None]:
    """The function registered for `name` (imported now, not before)."""
    if name not in COMMANDS:
        raise DlcotError(f"unknown command {name!r}\n\n{usage()}")
    module, func = COMMANDS[name][0].split(":")
    return getattr(importlib.import_module(module), func)


def config_groups() -> list[str]:
    """Every config group a command line can select (`group=option`): the option folders of conf/."""
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and any(p.glob("*.yaml")) and p.name != "recipes")


def usage() -> str:
    """`dlcot --help`: the commands, the config groups and where recipes live."""
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: dlcot <command> [key=value ...] [group=option ...] [recipe=NAME] [--cfg]", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in sorted(COMMANDS.items())]
    lines += ["", f"Overrides are Hydra syntax; groups: {' '.join(config_groups())}.",
              "Recipes live in recipes/ (recipe=quickstart, recipe=dlcot/raw_vs_enhanced)."]
    return "\n".join(lines)


def check_output(name: str, cfg: DictConfig) -> None:
    """The one output-path check, before any work: `output=` (or the default run directory) must be writable."""
    if name == "segment":
        if cfg.output:
            rundir.check_output(cfg.output, kind="file")
    elif name == "report":
        if cfg.output or cfg.runs:
            rundir.check_output(cfg.output or cfg.runs)
    else:
        rundir.check_output(run_dir(cfg))


def run_command(name: str, overrides: Sequence[str] = ()) -> Path | None:
    """Compose the config for `name` with `overrides` and run it (the programmatic form of the CLI). The run
    directory locks the command takes (`dlcot.rundir`) are released when it returns."""
    if name in UNCOMPOSED:
        fn = resolve_command(name)
        procs.install()
        return fn(list(overrides))
    return run_composed(name, compose(name, list(overrides)))


def run_composed(name: str, cfg: DictConfig) -> Path | None:
    """Run `name` on the config `compose(name, overrides)` gave: a chain runs the stage config it has already
    composed to hash (`dlcot.orchestrate.chain`) instead of composing it a second time (~0.5 s a stage)."""
    fn = resolve_command(name)
    procs.install()
    check_output(name, cfg)
    before = set(rundir.held())
    try:
        return fn(cfg)
    finally:
        rundir.release([p for p in rundir.held() if p not in before])
