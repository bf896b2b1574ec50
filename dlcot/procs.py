"""Child processes die with their parent, and SIGTERM stops dlcot the way Ctrl-C does.

Why: `enhance` forks a worker pool and every worker forks a math-verify pool (`dlcot.answers`); killed with
SIGTERM or kill -9, the parent used to leave them running for minutes (~1.5 GB). `install()` registers an
at-fork hook, so every process dlcot forks (multiprocessing pools of any library included) asks the kernel to
kill it when its parent dies (Linux `prctl(PR_SET_PDEATHSIG)`), with a parent-pid watchdog thread where prctl is
not available. Forked children also ignore Ctrl-C and take SIGTERM's default action: the parent handles both
and tears its pools down; and they freeze what they inherit out of the garbage collector's sight (`gc.freeze`).

Commands dlcot starts (`accelerate launch` stages of `dlcot run`, `dlcot sweep`'s jobs) start process trees of
their own, and a death signal reaches only the process it was set on: `accelerate launch` with one process
(`simple_launcher`) has no SIGTERM handler and leaves its training process running when it dies; with several
(torchrun's elastic agent) it stops its ranks on SIGTERM (then SIGKILL after 30 s) but not on SIGKILL. So
`run_tied` starts such a command under a small supervisor (`python -m dlcot.procs`): it gets SIGTERM when dlcot
dies (PDEATHSIG, so accelerate and torchrun's own handling runs), is the subreaper of everything below it (Linux
`PR_SET_CHILD_SUBREAPER`: an orphaned rank comes back to it instead of init), and on that SIGTERM, or when the
command ends, sends SIGTERM to every descendant and SIGKILL to what is left after `grace_s`.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import psutil

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 30.0  # SIGTERM to SIGKILL, as torchrun's agent gives its workers
_parent = {"pid": os.getpid()}
_installed = {"hooks": False}


def _prctl(option: int, arg: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _prctl_pdeathsig(sig: int) -> bool:
    return _prctl(PR_SET_PDEATHSIG, sig)


def _watchdog(parent: int, period_s: float) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(period_s)


def die_with_parent(parent: int | None = None, *, period_s: float = 1.0) -> None:
    """Make this process end when `parent` (default: its current parent) ends."""
    parent = os.getppid() if parent is None else parent
    if not _prctl_pdeathsig(signal.SIGKILL):
        threading.Thread(target=_watchdog, args=(parent, period_s), daemon=True, name="dlcot-watchdog").start()
    if os.getppid() != parent:  # the parent died before the kernel was told
        os._exit(1)


def exec_dies_with_parent() -> None:
    """`preexec_fn` of a command dlcot runs as a process: a kill -9 of dlcot sends it SIGTERM (Linux), which it
    may handle. Runs after the at-fork hook, whose ignored Ctrl-C would survive exec: the command gets default
    signal actions back."""
    _prctl_pdeathsig(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_tied(cmd: Sequence[str], *, check: bool = False, grace_s: float = GRACE_S) -> subprocess.CompletedProcess:
    """`subprocess.run(cmd)` whose whole process tree ends with dlcot (even on kill -9) and with the command."""
    supervisor = [sys.executable, "-m", "dlcot.procs", f"--parent={os.getpid()}", f"--grace={grace_s}", "--", *cmd]
    proc = subprocess.Popen(supervisor, preexec_fn=exec_dies_with_parent)
    try:
        code = proc.wait()
    except BaseException:  # Ctrl-C or SIGTERM here: the supervisor ends the tree (subprocess.run would SIGKILL
        proc.terminate()  # it, orphaning the tree), and this process waits for that before it goes on
        proc.wait()
        raise
    if check and code:
        raise subprocess.CalledProcessError(code, list(cmd))
    return subprocess.CompletedProcess(list(cmd), code)


def _signal_tree(sig: int) -> None:
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # gone meanwhile; psutil checks the pid still names the process
            proc.send_signal(sig)


def supervise(cmd: Sequence[str], parent: int, grace_s: float = GRACE_S) -> int:
    """Run `cmd`; on SIGTERM/SIGINT/SIGHUP (PDEATHSIG: dlcot died) or when `cmd` ends, SIGTERM every descendant,
    SIGKILL what is left `grace_s` later, and return once none is left. Returns cmd's exit code (negative: a
    signal, which `main` passes on by dying of it)."""
    if os.getppid() != parent:  # dlcot died before this process was tied to it
        return -signal.SIGTERM
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    ending: list[int] = []

    def end_tree(sig: int) -> None:
        if not ending:
            ending.append(sig)
            signal.setitimer(signal.ITIMER_REAL, grace_s, 0.5)  # then SIGKILL every 0.5 s until none is left
        _signal_tree(sig)

    def stop(signum: int, frame: object) -> None:
        end_tree(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    signal.signal(signal.SIGALRM, lambda signum, frame: _signal_tree(signal.SIGKILL))
    child = subprocess.Popen(list(cmd))
    if ending:  # stopped while the command was being started
        end_tree(signal.SIGTERM)
    code = None
    while True:
        try:
            pid, status = os.waitpid(-1, 0)  # the command and every orphan re-parented here
        except ChildProcessError:
            break
        if pid == child.pid:
            code = child.returncode = os.waitstatus_to_exitcode(status)
            end_tree(signal.SIGTERM)  # what it left running
    signal.setitimer(signal.ITIMER_REAL, 0)
    return code if code is not None else -signal.SIGTERM


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m dlcot.procs --parent=PID [--grace=S] -- CMD...`: the supervisor `run_tied` starts."""
    parser = argparse.ArgumentParser(prog="python -m dlcot.procs")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--grace", type=float, default=GRACE_S)
    parser.add_argument("cmd", nargs="+")
    args = parser.parse_args(argv)
    code = supervise(args.cmd, args.parent, args.grace)
    if code < 0:  # die of the command's signal, so the caller sees what it would have seen without us
        with contextlib.suppress(OSError, ValueError):  # SIGKILL's action cannot be set (nor needs to be)
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    sys.exit(code)


def _before_fork() -> None:
    _parent["pid"] = os.getpid()


def _in_child() -> None:
    # The child's collections skip everything it inherited (O(1) here) and so do not write to, i.e. copy, those
    # pages: Python's advice for forked processes. A math-verify verifier's time in collections over the 126
    # Sky-T1 enhance pairs: 0.26 -> 0.16 s.
    gc.freeze()
    die_with_parent(_parent["pid"])
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # not the main thread of the child (cannot happen after fork, kept for safety)
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as a KeyboardInterrupt so the same cleanup runs."""

    signum = signal.SIGTERM


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(f"signal {signum}")


def install(*, sigterm: bool = True) -> None:
    """Register the at-fork hooks (once per process) and, in the main thread, make SIGTERM raise
    KeyboardInterrupt, so every stage's cleanup (keep partial outputs, close pools) runs as on Ctrl-C."""
    if not _installed["hooks"]:
        os.register_at_fork(before=_before_fork, after_in_child=_in_child)
        _installed["hooks"] = True
    if sigterm and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


if __name__ == "__main__":
    main()
