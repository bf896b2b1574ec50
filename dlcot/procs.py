"""Child processes die with their parent, and SIGTERM stops dlcot the way Ctrl-C does.

Why: `enhance` forks a worker pool and every worker forks a math-verify pool (`dlcot.answers`); killed with
SIGTERM or kill -9, the parent used to leave them running for minutes (~1.5 GB). `install()` registers an
at-fork hook, so every process dlcot forks (multiprocessing pools of any library included) asks the kernel to
kill it when its parent dies (Linux `prctl(PR_SET_PDEATHSIG)`), with a parent-pid watchdog thread where prctl is
not available. Forked children also ignore Ctrl-C and take SIGTERM's default action: the parent handles both
and tears its pools down.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
_parent = {"pid": os.getpid()}
_installed = {"hooks": False}


def _prctl_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


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
    """`preexec_fn` of the commands dlcot runs as processes (`accelerate launch` stages, sweep jobs): a kill -9 of
    dlcot ends them too (Linux; elsewhere they end when they next write to the closed pipe or finish). Runs after
    the at-fork hook, whose ignored Ctrl-C would survive exec: the command gets default signal actions back."""
    _prctl_pdeathsig(signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _before_fork() -> None:
    _parent["pid"] = os.getpid()


def _in_child() -> None:
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
