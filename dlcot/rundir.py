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
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path

from dlcot.errors import ConfigError

LOCK_NAME = ".dlcot.lock"
RECORD_NAME = ".dlcot-run.json"

_held: dict[Path, int] = {}  # lock file (resolved) -> open fd, for the locks this process holds


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


def lock(directory: str | Path, name: str = LOCK_NAME) -> Path:
    """Hold an exclusive lock on `directory` for this process (re-entrant); raise if another process holds it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / name).resolve()
    if path in _held:
        return path
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise ConfigError(f"{directory}: cannot lock {path} ({err.strerror})") from err
        raise ConfigError(f"another dlcot process (pid {holder}) is writing here: {directory}; wait for it to "
                          "finish or pick another output=") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = fd
    return path


def release(paths: Sequence[Path] | None = None) -> None:
    """Release the given locks (all this process holds when None)."""
    for path in list(_held if paths is None else paths):
        fd = _held.pop(path, None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


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
