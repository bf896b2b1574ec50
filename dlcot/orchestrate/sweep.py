"""`dlcot sweep recipe=R -m a=x,y b=u,v`: one job per point of the grid, then one table over all of them.

An ablation (teacher × student, DLCoT policy, learning rate ...) is a recipe that describes one experiment plus
the values to vary; every job is that recipe with one value per swept key, so each is a config of its own, hashed,
resumable and reproducible alone. The grid is parsed by Hydra's override grammar (`a=x,y`, `a=range(1,4)`,
`a=choice(x,y)`), its points taken in order as a Cartesian product, as Hydra's basic sweeper does.

Each job is `dlcot run` of the recipe in its own process (a stage with `launch:` then runs under `accelerate
launch`, as in a single run), writing to `<sweep dir>/<key-value__...>`. Jobs run one after another, or one per
SLURM array task with `--job=N` (launch/slurm/sweep.sbatch). A failed job is recorded and the others still run;
each job keeps its status in its `job.json`, `sweep.json` lists them all, and a rerun of the same sweep skips the
stages each job has finished. Once every job has finished, `dlcot report` makes one table of all of them.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from dlcot import procs
from dlcot.commands import run_command
from dlcot.errors import ConfigError, DlcotError
from dlcot.records import atomic_write_json
from dlcot.rundir import check_output

log = logging.getLogger(__name__)
MULTIRUN_FLAGS = ("-m", "--multirun")


@dataclass
class Job:
    name: str
    overrides: list[str]  # the swept values of this job (the sweep's fixed overrides come first)
    dir: str
    status: str = "pending"  # pending | running | ok | failed
    returncode: int | None = None
    seconds: float | None = None


def expand(overrides: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """(fixed overrides, one list of `key=value` per job) from a command line with sweep overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    fixed, axes = [], []
    try:
        for ov in OverridesParser.create().parse_overrides([o for o in overrides if o not in MULTIRUN_FLAGS]):
            if not ov.is_sweep_override():
                fixed.append(ov.input_line)
                continue
            key = ov.get_key_element()
            values = list(ov.sweep_string_iterator())
            if not values:
                raise ConfigError(f"sweep override {ov.input_line!r} has no values")
            axes.append([f"{key}={v}" for v in values])
    except HydraException as err:
        raise ConfigError(f"dlcot sweep: cannot parse the overrides ({err}); use a=x,y, a=range(a,b) or "
                          "a=choice(x,y)") from err
    return fixed, [list(point) for point in itertools.product(*axes)]


def job_name(overrides: Sequence[str]) -> str:
    """A readable directory name for a job from its swept `key=value`s (`student-tiny_llama__seed-1`): without
    `=`, `,` or quotes, which would break the overrides that carry the path (`output=`, `{stage}` paths)."""
    name = "__".join(ov.lstrip("+~").replace("=", "-", 1) for ov in overrides) or "base"
    return re.sub(r"[^\w.+-]", "_", name)[:200]


def sweep_dir(fixed: Sequence[str], jobs: Sequence[Sequence[str]]) -> Path:
    """`output=` if given, else `<runs_dir>/<recipe>/sweep-<hash of the fixed overrides and the grid>`."""
    settings = dict(ov.split("=", 1) for ov in fixed if "=" in ov)
    if "output" in settings:
        return Path(settings["output"])
    spec = json.dumps({"fixed": sorted(fixed), "jobs": [list(j) for j in jobs]})
    recipe = settings.get("recipe", "sweep")
    return Path(settings.get("runs_dir", "runs")) / recipe / f"sweep-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


def run(overrides: Sequence[str]) -> Path | None:
    """Run the sweep's jobs (all of them, or job N with `--job=N`); returns the report once every job has
    finished (the sweep directory while some have not, or when no job was evaluated). `--cfg` prints the jobs
    instead of running them."""
    flags = [o for o in overrides if o == "--cfg" or o.startswith("--job=")]
    fixed, points = expand([o for o in overrides if o not in flags])
    if not any(ov.startswith("recipe=") for ov in [*fixed, *points[0]]):
        raise ConfigError("dlcot sweep needs recipe=NAME: the experiment each job runs (its `stages`)")
    root = sweep_dir(fixed, points)
    base = [ov for ov in fixed if not ov.startswith("output=")]
    jobs = [Job(job_name(p), p, str(root / job_name(p))) for p in points]
    if len({j.name for j in jobs}) != len(jobs):
        raise ConfigError("dlcot sweep: two jobs share a directory name; make the swept values distinct")
    if "--cfg" in flags:
        print("\n".join([f"sweep of {len(jobs)} jobs (--job=0..{len(jobs) - 1}) into {root}",
                         f"fixed: {' '.join(base)}",
                         *(f"  {i}: dlcot run {' '.join([*base, *j.overrides])}" for i, j in enumerate(jobs))]))
        return None
    selected = _selected(flags, jobs)
    check_output(root)
    root.mkdir(parents=True, exist_ok=True)
    log.info("sweep of %d jobs into %s; running %d", len(jobs), root, len(selected))
    for job in selected:
        cmd = [sys.executable, "-m", "dlcot.cli", "run", *base, *job.overrides, f"output={job.dir}"]
        log.info("job %d of 0..%d, %s: %s", jobs.index(job), len(jobs) - 1, job.name, " ".join(cmd[3:]))
        _record(root, base, jobs, job, status="running")
        t0 = time.perf_counter()
        job.returncode = procs.run_tied(cmd).returncode
        job.seconds = round(time.perf_counter() - t0, 2)
        _record(root, base, jobs, job, status="ok" if job.returncode == 0 else "failed")
    unfinished = [j.name for j in jobs if j.status in ("pending", "running")]
    if unfinished:
        log.info("%d of %d jobs not finished yet (%s): the report is made by the last one", len(unfinished),
                 len(jobs), ", ".join(unfinished))
        return root
    out = _report(root)
    failed = [j.name for j in jobs if j.status == "failed"]
    if failed:
        raise DlcotError(f"{len(failed)} of {len(jobs)} sweep jobs failed ({', '.join(failed)}); see "
                         f"{root / 'sweep.json'} and each job's log; a rerun retries them")
    return out


def _selected(flags: list[str], jobs: list[Job]) -> list[Job]:
    """Every job, or the one `--job=N` names (a SLURM array task: launch/slurm/sweep.sbatch)."""
    picks = [f.split("=", 1)[1] for f in flags if f.startswith("--job=")]
    if not picks:
        return jobs
    if len(picks) > 1 or not picks[0].isdigit() or int(picks[0]) >= len(jobs):
        raise ConfigError(f"--job={','.join(picks)}: give one job number in 0..{len(jobs) - 1} "
                          "(`dlcot sweep ... --cfg` lists them)")
    return [jobs[int(picks[0])]]


def _record(root: Path, base: list[str], jobs: list[Job], job: Job, *, status: str) -> None:
    """Write `job`'s status into its own `job.json`, then `sweep.json` from every job's file: array tasks that
    run jobs at the same time each own one file, and the manifest is rebuilt from all of them."""
    job.status = status
    Path(job.dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(job.dir) / "job.json", asdict(job))
    for other in jobs:
        state = Path(other.dir) / "job.json"
        if other is not job and state.is_file():
            saved = json.loads(state.read_text())
            other.status, other.returncode, other.seconds = saved["status"], saved["returncode"], saved["seconds"]
    atomic_write_json(root / "sweep.json", {"fixed": base, "jobs": [asdict(j) for j in jobs]})


def _report(root: Path) -> Path:
    if not any(root.rglob("metrics.json")):
        log.info("no job wrote metrics.json (no eval stage): no sweep report")
        return root
    return run_command("report", [f"runs={root}", f"output={root}"]) or root
