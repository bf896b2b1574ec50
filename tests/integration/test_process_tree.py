"""A kill -9 of dlcot leaves nothing it launched running: not the launched command, nor anything below it.

`dlcot run` starts `accelerate launch ... -m dlcot.cli train` for a stage with `launch:` and `dlcot sweep` starts
`dlcot run` jobs, both through `procs.run_tied`. A death signal reaches only the process it is set on, and
accelerate's one-process launcher has no SIGTERM handler: its training process used to outlive a killed
`dlcot run`. The stand-in tree below has what a real one has: a launcher that only waits (accelerate's
`simple_launcher`), a rank that handles SIGTERM by ignoring it (a rank busy in a collective), a worker process
of the rank, and a daemon the rank double-forked into its own session (escaped from its parent and its process
group). The parent plays `dlcot run`: it is killed with SIGKILL, so none of its own cleanup runs, or with SIGTERM,
which dlcot turns into KeyboardInterrupt (where `subprocess.run` would SIGKILL its child and orphan the tree).
"""
from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PDEATHSIG and subreapers are Linux")

RANK = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends this one
worker = subprocess.Popen(["sleep", "120"])
if os.fork() == 0:  # a daemon: double fork into a new session, its parent exits at once
    os.setsid()
    daemon = subprocess.Popen(["sleep", "120"])
    with open(sys.argv[1], "a") as fh:
        fh.write(f"daemon {daemon.pid}\\n")
    os._exit(0)
with open(sys.argv[1], "a") as fh:
    fh.write(f"rank {os.getpid()}\\nworker {worker.pid}\\n")
time.sleep(120)
"""

LAUNCHER = """
import os, subprocess, sys
rank = subprocess.Popen([sys.executable, "-c", sys.argv[2], sys.argv[1]])
with open(sys.argv[1], "a") as fh:
    fh.write(f"launcher {os.getpid()}\\n")
rank.wait()  # accelerate's simple_launcher: Popen, wait, nothing else
"""

PARENT = """
import sys
from dlcot import procs
procs.install()
procs.run_tied([sys.executable, "-c", sys.argv[2], sys.argv[1], sys.argv[3]], check=True, grace_s=1.0)
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pids(path: Path, names: set[str], timeout_s: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = dict(line.split() for line in path.read_text().splitlines()) if path.exists() else {}
        if set(rows) >= names:
            return {k: int(v) for k, v in rows.items()}
        time.sleep(0.1)
    raise AssertionError(f"the stand-in tree did not start: {path.read_text() if path.exists() else 'no pids'}")


@contextlib.contextmanager
def _parent(*args: str, pid_file: Path, names: set[str], timeout_s: float = 60):
    """Start the stand-in `dlcot run`, wait for its tree, yield (its process, the tree's live pids); whatever
    the test finds, nothing of the tree is left behind for the rest of the suite."""
    parent = subprocess.Popen([sys.executable, "-c", *args])
    tree: list[psutil.Process] = []
    try:
        pids = _pids(pid_file, names, timeout_s)
        tree = [p for p in psutil.Process(parent.pid).children(recursive=True) if _alive(p.pid)]
        assert set(pids.values()) <= {p.pid for p in tree}, "the stand-ins descend from the parent"
        yield parent, [p.pid for p in tree]
    finally:
        parent.kill()
        parent.wait()
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def _kill_parent_and_wait(parent: subprocess.Popen, pids: list[int], timeout_s: float = 20,
                          sig: int = signal.SIGKILL) -> list[int]:
    assert all(_alive(p) for p in pids)
    parent.send_signal(sig)  # kill -9: no cleanup of the parent runs; SIGTERM: dlcot's own (procs.install)
    parent.wait(timeout_s)
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_every_descendant_of_a_killed_parent_ends(tmp_path, sig):
    pid_file = tmp_path / "pids"
    with _parent(PARENT, str(pid_file), LAUNCHER, RANK, pid_file=pid_file,
                 names={"launcher", "rank", "worker", "daemon"}) as (parent, tree):
        assert _kill_parent_and_wait(parent, tree, sig=sig) == []


def test_a_command_that_ends_leaves_nothing_running(tmp_path):
    """A launcher that exits while a daemon of its tree still runs: run_tied returns only once it is gone."""
    from dlcot import procs

    pid_file = tmp_path / "pids"
    script = ("import subprocess, sys; p = subprocess.Popen(['sleep', '120'], start_new_session=True); "
              "open(sys.argv[1], 'w').write(f'daemon {p.pid}\\n')")
    done = procs.run_tied([sys.executable, "-c", script, str(pid_file)], grace_s=1.0)
    assert done.returncode == 0 and not _alive(_pids(pid_file, {"daemon"})["daemon"])
    with pytest.raises(subprocess.CalledProcessError):
        procs.run_tied([sys.executable, "-c", "raise SystemExit(3)"], check=True)
    assert procs.run_tied([sys.executable, "-c", "import os; os.kill(os.getpid(), 15)"]).returncode == -signal.SIGTERM


STAND_IN_RANK = """
import os, subprocess, sys, time
worker = subprocess.Popen(["sleep", "120"])
with open(sys.argv[1], "a") as fh:
    fh.write(f"rank {os.getpid()}\\nworker {worker.pid}\\n")
time.sleep(120)
"""

ACCELERATE_PARENT = """
import sys
from dlcot import procs
procs.install()
procs.run_tied([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes=1", "--num_machines=1",
                "--mixed_precision=no", "--dynamo_backend=no", sys.argv[2], sys.argv[1]], grace_s=5.0)
"""


@pytest.mark.slow
def test_a_real_accelerate_launch_ends_with_a_killed_parent(tmp_path):
    """The same with `accelerate launch` itself (its simple_launcher) and a stand-in training script."""
    script = tmp_path / "rank.py"
    script.write_text(STAND_IN_RANK)
    pid_file = tmp_path / "pids"
    with _parent(ACCELERATE_PARENT, str(pid_file), str(script), pid_file=pid_file, names={"rank", "worker"},
                 timeout_s=120) as (parent, tree):
        assert len(tree) == 4  # supervisor, accelerate, rank, worker
        assert _kill_parent_and_wait(parent, tree) == []
