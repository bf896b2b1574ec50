"""`dlcot <command> [hydra overrides]`: compose the config for a command and dispatch to its stage.

Commands are registered by import path so `dlcot --help` stays fast and stages stay independent: each entry
is `module:function`, the function takes the composed `DictConfig` and returns the path it wrote.
`dlcot <command> --cfg` prints the resolved config instead of running.
"""
from __future__ import annotations

import importlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlcot import procs, rundir
from dlcot.config import compose, run_dir
from dlcot.errors import DlcotError

COMMANDS: dict[str, tuple[str, str]] = {
    # name: ("module:function", one-line help)
    "eval": ("dlcot.eval.commands:eval", "score a model on a benchmark → predictions.jsonl, metrics.json, report.md"),
    "generate": ("dlcot.data.generate:run", "teacher long CoT for problems → traces.jsonl"),
    "decontaminate": ("dlcot.data.decontaminate:run",
                      "drop traces whose problem shares an 8-gram with the benchmarks → traces.jsonl, rejected.jsonl"),
    "segment": ("dlcot.enhance.commands:segment", "DLCoT segmentation of traces → one gold-format line per trace"),
    "enhance": ("dlcot.enhance.commands:enhance", "DLCoT simplification → enhanced.jsonl, stats.json, report, plots"),
    "mcts": ("dlcot.mcts.commands:run", "Marco-o1 v2 MCTS over typed thought nodes → trees, sft.jsonl, pairs.jsonl"),
    "train": ("dlcot.train:run", "SFT on traces or DPO on pairs (train.stage) with TRL → model + train_stats.json"),
    "run": ("dlcot.chain:run", "run a recipe's stages in order (make demo = dlcot run recipe=quickstart)"),
    "report": ("dlcot.report:run", "one table (markdown + CSV + plot) of every run under runs=DIR"),
    "sweep": ("dlcot.sweep:run", "a recipe over a grid (-m a=x,y b=u,v), one run per job → sweep.json + report"),
}
# Commands that take the raw overrides: a sweep's `a=x,y` is not one config to compose.
UNCOMPOSED = {"sweep"}

log = logging.getLogger("dlcot")


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: dlcot <command> [key=value ...] [group=option ...] [recipe=NAME] [--cfg]", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in sorted(COMMANDS.items())]
    lines += ["", "Overrides are Hydra syntax; groups: data teacher student engine enhance mcts train eval.",
              "Recipes live in recipes/ (recipe=quickstart, recipe=dlcot/raw_vs_enhanced)."]
    return "\n".join(lines)


def resolve_command(name: str) -> Callable[..., Path | None]:
    if name not in COMMANDS:
        raise DlcotError(f"unknown command {name!r}\n\n{_usage()}")
    module, func = COMMANDS[name][0].split(":")
    return getattr(importlib.import_module(module), func)


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
    fn = resolve_command(name)
    procs.install()
    if name in UNCOMPOSED:
        return fn(list(overrides))
    cfg = compose(name, list(overrides))
    check_output(name, cfg)
    before = set(rundir.held())
    try:
        return fn(cfg)
    finally:
        rundir.release([p for p in rundir.held() if p not in before])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    try:
        if "--cfg" in rest and name not in UNCOMPOSED:
            resolve_command(name)
            print(OmegaConf.to_yaml(compose(name, [a for a in rest if a != "--cfg"]), resolve=True))
            return 0
        out = run_command(name, rest)
    except DlcotError as err:
        print(f"dlcot {name}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (procs.install): outputs so far are kept
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"dlcot {name}: interrupted ({signum.name}); partial outputs are kept, rerun the "
              "same command to resume", file=sys.stderr)
        return 128 + signum
    except OSError as err:  # disk full, permissions changed during the run: the path is in the message
        print(f"dlcot {name}: error: {err}", file=sys.stderr)
        return 1
    if out is not None:
        print(f"dlcot {name}: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
