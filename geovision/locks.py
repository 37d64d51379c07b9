"""One lock per output, held for the life of the run that writes it.

The lock is ``fcntl.flock`` on a small file beside the output, ``.<name>.geovision-lock``
(``tiles.zarr`` -> ``.tiles.zarr.geovision-lock``): beside, so that it exists before the
output does and outlives the renames of a run (``tiles.zarr.partial`` -> ``tiles.zarr``) and
the removal of ``--overwrite``. The kernel releases it when the process ends, however it ends
(``kill -9`` included), so there is never a stale lock to clean by hand. The file records who
holds it (pid, host, command line, start time) and is removed when the run ends; one left by
a crashed run is harmless (taken over by the next run, and owned in
:func:`geovision.ownership.remove_owned`).

A second run on the same output fails at once, whatever its mode (plain, ``--resume``,
``--overwrite``), with one line: ``tiles.zarr: in use by 'geovision tile ...' (pid 1234 on
host, since 10:32); wait for it or stop it``. Locks are re-entrant within a process (a job
step that calls ``tile`` while the job holds the same output).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from geovision.errors import OutputError, OutputInUseError
from geovision.ownership import LOCK_SUFFIX, PathLike, command_line

log = logging.getLogger(__name__)

_HELD: dict[str, tuple[int, int]] = {}  # lock file -> (fd, depth), this process
_HELD_GUARD = threading.Lock()


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock."""

    pid: int
    host: str
    command: str
    started: str

    def describe(self) -> str:
        """``'geovision tile ...' (pid 1234 on host, since 10:32)``."""
        since = self.started
        try:
            when = dt.datetime.fromisoformat(self.started).astimezone()
            today = dt.datetime.now().astimezone().date()
            since = when.strftime("%H:%M" if when.date() == today else "%Y-%m-%d %H:%M")
        except ValueError:
            pass
        return f"'{self.command}' (pid {self.pid} on {self.host}, since {since})"


def lock_path(output: PathLike) -> Path:
    """The lock file of an output: ``.<name>.geovision-lock`` in the output's folder.

    Raises:
        OutputError: the output has no name (the file system root).
    """
    where = Path(os.path.abspath(output))
    if not where.name:
        raise OutputError(f"{output}: not a place for an output")
    return where.parent / f".{where.name}{LOCK_SUFFIX}"


def _read_holder(fd: int) -> LockHolder | None:
    try:
        raw = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
        return LockHolder(pid=int(raw["pid"]), host=str(raw["host"]),
                          command=str(raw["command"]), started=str(raw["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lock_holder(output: PathLike) -> LockHolder | None:
    """Who holds the lock on ``output`` now; None when nobody does."""
    path = lock_path(output)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            return _read_holder(fd) or LockHolder(0, "?", "another process", "")
        return None
    finally:
        os.close(fd)


def _make_parents(folder: Path, option: str) -> list[Path]:
    """Create the missing folders of ``folder``; return those created, deepest first."""
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{folder}: {probe} is a file, where a folder is needed; choose "
                          f"another {option}")
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            _remove_empty(missing)
            raise _not_writable(d.parent, exc, option) from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for d in folders:  # deepest first
        try:
            d.rmdir()
        except OSError:
            return


def _not_writable(folder: Path, exc: OSError, option: str) -> OutputError:
    reason = {errno.EROFS: "read-only file system", errno.ENOSPC: "no space left",
              errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied"}.get(exc.errno or 0, exc.strerror or str(exc))
    shown = os.fspath(folder) or "."
    return OutputError(f"{shown.rstrip('/')}/: not writable ({reason}); choose another {option}")


def _acquire(path: Path, display: str, folder: Path, option: str) -> int | None:
    """Lock ``path``; the open descriptor, or None where the file system has no locks.

    Raises:
        OutputInUseError: another process holds it.
        OutputError: the folder is not writable.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _not_writable(folder, exc, option) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                who = holder.describe() if holder else "another process"
                raise OutputInUseError(f"{display}: in use by {who}; wait for it or stop it"
                                       ) from None
            log.warning("%s: this file system does not lock files (%s); running without a "
                        "lock", display, exc.strerror)
            return None
        try:  # the previous holder may have removed the file between our open and flock
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def output_lock(output: PathLike, *, command: str | None = None,
                option: str = "--output") -> Iterator[Path]:
    """Hold the lock on ``output`` (a file or folder, existing or not) for a ``with`` block.

    Args:
        output: the output's final path (lock ``tiles.zarr``, not ``tiles.zarr.partial``).
        command: the command line to show to a second run (default: this process's).
        option: the option that named the output, for messages.

    Yields:
        The lock file.

    Raises:
        OutputInUseError: another process holds the lock (the message says which).
        OutputError: the output's folder is not writable, or a part of its path is a file.
    """
    path = lock_path(output)
    key = os.fspath(path)
    with _HELD_GUARD:
        if key in _HELD:
            fd, depth = _HELD[key]
            _HELD[key] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _HELD_GUARD:
                fd, depth = _HELD[key]
                _HELD[key] = (fd, depth - 1)
        return
    folder = Path(os.path.normpath(os.fspath(output))).parent  # as the user wrote it
    created = _make_parents(folder, option)
    try:
        fd_or_none = _acquire(path, os.fspath(output), folder, option)
    except BaseException:
        _remove_empty(created)
        raise
    if fd_or_none is None:
        try:
            yield path
        finally:
            _remove_empty(created)
        return
    fd = fd_or_none
    info = {"geovision": "lock", "pid": os.getpid(), "host": socket.gethostname(),
            "command": command or command_line(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
    with _HELD_GUARD:
        _HELD[key] = (fd, 1)
    try:
        yield path
    finally:
        with _HELD_GUARD:
            del _HELD[key]
        try:
            path.unlink()  # while still held: a waiting run re-checks the inode
        except OSError:
            pass
        os.close(fd)
        _remove_empty(created)
