"""The run-directory guard every command goes through: one output check, one lock, one recorded config hash.

Why: a run directory is the unit of resume. Two processes appending to it at once (two `dlcot enhance` with the
same config, hence the same default folder) interleave their lines; a rerun with another config would resume
the first config's partial outputs or checkpoints and mix two experiments in one folder; a bad `output=` found
only when the first file is written wastes all the work before it. So, before any work:

- `check_output` checks that `output=` can be written (not a file, not under a file, not read-only) and fails
  with one line naming the path.
- `claim` takes an exclusive lock on `<dir>/.dlcot.lock` (held until the command ends or the process dies; the
  kernel drops a dead process's lock, so a kill -9 never leaves a stale lock), records the holder's pid there for
  the error a second process gets, and checks the hash recorded in `<dir>/.dlcot-run.json`: a directory holding
  resumable state (partial outputs, checkpoints) of another config is refused, never resumed.

Locks are `filelock.FileLock`s (flock where the filesystem has it). On a filesystem without locks (some NFS
mounts) filelock falls back to a marker file naming the holder's pid and host, which it removes on release and
breaks when the holder is a dead process of this host; one left by a process killed on another host stays until
removed by hand, and the error names it (README "What happens when").
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from dlcot.errors import ConfigError

LOCK_NAME = ".dlcot.lock"
RECORD_NAME = ".dlcot-run.json"
SHARED_WAIT_S = 48 * 3600.0  # how long a sweep job waits for another job's shared stage before giving up
log = logging.getLogger(__name__)

_held: dict[Path, FileLock] = {}  # lock file (resolved) -> the lock, for the locks this process holds


def check_output(path: str | Path, *, kind: str = "dir", key: str = "output") -> Path:
    """Raise a one-line ConfigError unless `path` can be created/written as a `kind` ("dir" or "file")."""
    if kind == "file" and (str(path).endswith(os.sep) or Path(path).is_dir()):
        raise ConfigError(f"{key}={path}: is a directory; give a file name")
    path = Path(path)
    if kind == "dir" and path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={path}: is a file, not a directory")
    probe = path if kind == "dir" else path.parent
    existing = probe
    while not existing.exists():
        if existing.is_symlink():
            raise ConfigError(f"{key}={path}: {existing} is a dangling symlink")
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}={path}: {existing} is a file, so nothing can be created under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={path}: {existing} is not writable")
    if kind == "file" and path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{key}={path}: not writable")
    return path


def holder(path: Path) -> str:
    """Who holds the lock file `path`: "pid N", with its host when that is another one (a lock marker on a
    filesystem without locks records both: filelock's soft lock writes "pid\\nhost\\n...")."""
    try:
        words = path.read_text(errors="replace").split()
    except OSError:
        words = []
    if not words or not words[0].isdigit():
        return "pid unknown"
    host = words[1] if len(words) > 1 else socket.gethostname()
    return f"pid {words[0]}" + ("" if host == socket.gethostname() else f" on host {host}")


def _acquire(path: Path, timeout_s: float) -> FileLock:
    """A held FileLock on `path`; its pid recorded in the file (a soft-lock marker records it itself)."""
    flock = FileLock(path, timeout=timeout_s, thread_local=False)
    flock.acquire()
    with contextlib.suppress(OSError):
        if path.read_text().split()[:1] != [str(os.getpid())]:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, f"{os.getpid()}\n".encode())
            finally:
                os.close(fd)
    return flock


def lock(directory: str | Path, name: str = LOCK_NAME, *, timeout_s: float = 0) -> Path:
    """Hold an exclusive lock on `directory` for this process (re-entrant); raise if another process holds it
    (after waiting `timeout_s`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / name).resolve()
    if path in _held:
        return path
    try:
        _held[path] = _acquire(path, timeout_s)
    except Timeout:
        raise ConfigError(f"another dlcot process ({holder(path)}) is writing here: {directory}; wait for it to "
                          f"finish or pick another output= (if no such process runs, remove {path})") from None
    except OSError as err:
        raise ConfigError(f"{directory}: cannot lock {path} ({err.strerror or err})") from err
    return path


def release(paths: Sequence[Path] | None = None) -> None:
    """Release the given locks (all this process holds when None)."""
    for path in list(_held if paths is None else paths):
        flock = _held.pop(path, None)
        if flock is not None:
            flock.release(force=True)


@contextlib.contextmanager
def waiting_lock(path: Path, what: str, *, timeout_s: float = SHARED_WAIT_S, report_s: float = 600.0
                 ) -> Iterator[None]:
    """Hold `path` while the body runs, waiting for another process that holds it (a sweep job running the
    same shared stage) for up to `timeout_s`, with a log line every `report_s`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline, wait = time.monotonic() + timeout_s, 0.0  # the first try does not wait: the log says who holds it
    while True:
        try:
            flock = _acquire(path, max(0.0, min(wait, deadline - time.monotonic())))
            break
        except Timeout:
            if time.monotonic() >= deadline:
                raise ConfigError(f"waited {timeout_s / 3600:.3g} h for {what} ({holder(path)} holds {path}); "
                                  f"if that process is gone, remove {path} and rerun") from None
            log.info("waiting for %s: %s holds %s", what, holder(path), path)
            wait = report_s
        except OSError as err:
            raise ConfigError(f"cannot lock {path} for {what} ({err.strerror or err})") from err
    try:
        yield
    finally:
        flock.release(force=True)


def held() -> list[Path]:
    return list(_held)


def has_resumable(directory: Path, patterns: Sequence[str]) -> list[Path]:
    return sorted(p for pattern in patterns for p in directory.glob(pattern))


def check_record(directory: str | Path, command: str, key: str, resumable: Sequence[str]) -> None:
    """Refuse `directory` when it holds resumable state (files matching `resumable`) of a config whose recorded
    key differs from `key`; then record `key`. A directory without a record (older dlcot) is adopted."""
    from dlcot.records import atomic_write_json

    directory = Path(directory)
    record = directory / RECORD_NAME
    try:
        old = json.loads(record.read_text()) if record.is_file() else {}
    except (OSError, ValueError):
        old = {}  # torn by a kill during its write: as if absent
    state = has_resumable(directory, resumable)
    if state and old and old.get("key") != key:
        raise ConfigError(f"{directory} holds unfinished work ({state[0].name}) of `dlcot {old.get('command')}` "
                          f"with another config (hash {old.get('key')}, now {key}); rerun with that config to "
                          "resume, or pick another output=")
    if old.get("key") != key or old.get("command") != command:
        atomic_write_json(record, {"command": command, "key": key})


def claim(directory: str | Path, command: str, key: str | None, resumable: Sequence[str] = ("*.partial",)) -> Path:
    """`check_output`, `lock`, then `check_record` (when `key` is given): the guard of a run directory."""
    directory = check_output(directory)
    lock(directory)
    if key is not None:
        check_record(directory, command, key, resumable)
    return directory
