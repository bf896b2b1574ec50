"""Run a recipe's stages in order: `dlcot run recipe=R [overrides]` (what `make demo` calls).

A recipe lists `stages`, each a command with its own overrides; `{name}` in an override is replaced by the
output directory of the earlier stage `name` (`{run}`: the chain's own directory), so each stage's output is
the next one's input. Every stage is composed like a command line of its own (`recipe=R`, the user's
overrides, the stage's overrides, `output=<run dir>/<stage>`), runs in-process or, when it names a `launch`
config, as its own `accelerate launch` process (how training runs on GPU clusters).

A stage that finished writes `.done.json` with the hash of its resolved config: a rerun of a finished chain
skips it, a changed stage reruns, and a crashed stage resumes through the stage's own resume logic.

A `share: true` stage (generate, mcts, enhance) is run once for every chain that agrees on the config parts
it reads (`SHARED_READS`): its output is `<runs_dir>/shared/<command>-<hash of those parts>`, so a sweep over students
does not regenerate a large teacher's traces per student. A file lock keeps two sweep jobs (SLURM array tasks
on a shared filesystem) from running it at once: the second waits, then finds it done.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from dlcot import procs, rundir
from dlcot.commands import run_command, run_composed
from dlcot.config import SHARED_READS, compose, config_hash, is_rank0, prepare_run_dir, reads_hash
from dlcot.errors import ConfigError
from dlcot.records import atomic_write_json

log = logging.getLogger(__name__)
DONE = ".done.json"


def _substitute(overrides: list[str], dirs: dict[str, Path], stage: str, names: set[str]) -> list[str]:
    """Replace `{name}` of a stage of this recipe by its output dir (other braces, e.g. templates, stay)."""
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in names:
            return m.group(0)
        if name not in dirs:
            raise ConfigError(f"stage {stage!r} refers to {{{name}}}, which is not an earlier stage "
                              f"(earlier: {', '.join(dirs) or 'none'})")
        return str(dirs[name])

    return [re.sub(r"\{([A-Za-z_][\w-]*)\}", repl, ov) for ov in overrides]


def stage_overrides(cfg: DictConfig, stage: DictConfig, out: Path, dirs: dict[str, Path]) -> list[str]:
    base = [f"recipe={cfg.recipe}"] if cfg.recipe else []
    user = [ov for ov in cfg.overrides if not ov.startswith(("recipe=", "output="))]
    names = {s.name for s in cfg.stages} | {"run"}
    return [*base, *user, *_substitute(list(stage.overrides), dirs, stage.name, names), f"output={out}"]


def stage_dir(cfg: DictConfig, stage: DictConfig, root: Path,
              dirs: dict[str, Path]) -> tuple[Path, list[str], str, DictConfig | None]:
    """(output dir, overrides, config hash marking it done, the stage's composed config when it is the one the
    stage runs with) of a stage: in the chain's directory, or for a `share: true` stage in
    `<runs_dir>/shared/`, named by the hash of what the command reads."""
    if not stage.share:
        out = root / stage.name
        overrides = stage_overrides(cfg, stage, out, dirs)
        composed = compose(stage.command, overrides)
        return out, overrides, config_hash(composed), composed
    if stage.command not in SHARED_READS or stage.launch:
        raise ConfigError(f"stage {stage.name!r}: share is for in-process {', '.join(SHARED_READS)} stages")
    digest = reads_hash(compose(stage.command, stage_overrides(cfg, stage, root / stage.name, dirs)), stage.command)
    out = Path(cfg.runs_dir) / "shared" / f"{stage.command}-{digest}"
    return out, stage_overrides(cfg, stage, out, dirs), digest, None


@contextmanager
def _locked(stage: DictConfig, out: Path):
    """Hold an exclusive lock on a shared stage's directory (no-op for a chain's own stages)."""
    if not stage.share:
        yield
        return
    with rundir.waiting_lock(out.with_name(out.name + ".lock"), f"shared stage {stage.name} ({out})"):
        yield


def _launch(stage: DictConfig, overrides: list[str]) -> None:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", stage.launch,
           "-m", "dlcot.cli", stage.command, *overrides]
    log.info("launching %s", " ".join(cmd))
    procs.run_tied(cmd, check=True)  # its whole tree (accelerate, ranks, their workers) ends with this process


def _run_stage(stage: DictConfig, out: Path, overrides: list[str], digest: str,
               composed: DictConfig | None) -> float:
    """Run one stage unless its `.done.json` holds `digest`; returns its seconds (0 when skipped). An
    in-process stage runs on `composed` when given (the config of exactly `overrides`)."""
    done = out / DONE
    if done.exists() and json.loads(done.read_text()).get("config_hash") == digest:
        log.info("stage %s: done already (%s), skipping", stage.name, out)
        return 0.0
    log.info("stage %s: dlcot %s %s", stage.name, stage.command, " ".join(overrides))
    t0 = time.perf_counter()
    if stage.launch:
        _launch(stage, overrides)
    elif composed is not None:
        run_composed(stage.command, composed)
    else:
        run_command(stage.command, overrides)
    seconds = round(time.perf_counter() - t0, 2)
    if is_rank0():
        atomic_write_json(done, {"config_hash": digest, "seconds": seconds, "overrides": overrides})
    return seconds


def run(cfg: DictConfig) -> Path:
    """Run every stage of the recipe; returns the final report.md when the chain ends in `report`, else its
    run directory."""
    if not cfg.stages:
        raise ConfigError(f"recipe {cfg.recipe!r} lists no `stages`: nothing to run (see recipes/quickstart.yaml)")
    root = prepare_run_dir(cfg)
    dirs: dict[str, Path] = {"run": root}  # `{run}` is the chain's own directory (e.g. for `report runs={run}`)
    timings: dict[str, float] = {}
    for stage in cfg.stages:
        if stage.name in dirs:
            raise ConfigError(f"stage name {stage.name!r} is used twice in recipe {cfg.recipe!r}")
        out, overrides, digest, composed = stage_dir(cfg, stage, root, dirs)
        dirs[stage.name] = out
        with _locked(stage, out):
            timings[stage.name] = _run_stage(stage, out, overrides, digest, composed)
    if is_rank0():
        atomic_write_json(root / "chain.json", {"stages": {k: str(v) for k, v in dirs.items()}, "seconds": timings})
    last = cfg.stages[-1]
    report = dirs[last.name] / "report.md"
    return report if last.command == "report" and report.exists() else root
