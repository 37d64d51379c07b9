"""Per-thread CPU and run-queue time of this process, from ``/proc/self/task`` (Linux).

Python threads get their name as the OS thread name (:func:`name_os_threads`), so that the
reader and writer threads of the inference pipeline can be told from the main thread, torch's
OpenMP workers (unnamed: they carry the name of the thread that started them) and GDAL's.
``schedstat`` gives nanoseconds on a CPU and nanoseconds waiting for one: the second says how
much a thread was held back by other threads (ours, or other users' on a shared machine).
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

_TASKS = Path("/proc/self/task")


def name_os_threads() -> None:
    """Give every Python thread started from now on its name as OS thread name (15 chars)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return
    original = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def bootstrap(self: threading.Thread) -> None:
        libc.prctl(15, self.name[:15].encode(), 0, 0, 0)  # PR_SET_NAME
        original(self)

    threading.Thread._bootstrap_inner = bootstrap  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ThreadTime:
    """A thread's name, seconds on a CPU and seconds runnable but waiting for a CPU."""

    name: str
    cpu: float
    wait: float


def snapshot() -> dict[int, ThreadTime]:
    """CPU and run-queue seconds of every live thread of this process, by thread id."""
    out = {}
    for task in _TASKS.iterdir():
        try:
            cpu, wait, _ = (task / "schedstat").read_text().split()
            name = (task / "comm").read_text().strip()
        except (OSError, ValueError):
            continue
        out[int(task.name)] = ThreadTime(name, int(cpu) / 1e9, int(wait) / 1e9)
    return out


def group(tid: int, name: str, main_name: str) -> str:
    """Which part of the work a thread does: main, pool (OpenMP/GDAL workers), or its name."""
    if tid == os.getpid():
        return "main"
    if name == main_name:
        return "pool"
    return name


def delta(before: dict[int, ThreadTime], after: dict[int, ThreadTime],
          ) -> dict[str, dict[str, float]]:
    """CPU and wait seconds between two snapshots, summed per :func:`group`.

    Threads that ended between the snapshots are missed (their time is lost); threads that
    started count from zero.
    """
    main_name = after.get(os.getpid(), ThreadTime("python", 0, 0)).name
    sums: dict[str, dict[str, float]] = defaultdict(lambda: {"cpu": 0.0, "wait": 0.0})
    for tid, t in after.items():
        b = before.get(tid, ThreadTime(t.name, 0.0, 0.0))
        g = sums[group(tid, t.name, main_name)]
        g["cpu"] += t.cpu - b.cpu
        g["wait"] += t.wait - b.wait
    return {k: {"cpu": round(v["cpu"], 3), "wait": round(v["wait"], 3)}
            for k, v in sorted(sums.items())}


def model_threads(snap: dict[int, ThreadTime]) -> tuple[float, float]:
    """CPU and wait seconds of the main thread and its unnamed workers (torch's OpenMP)."""
    main = snap.get(os.getpid())
    if main is None:
        return 0.0, 0.0
    cpu = wait = 0.0
    for t in snap.values():
        if t.name == main.name:
            cpu += t.cpu
            wait += t.wait
    return cpu, wait


class Sampler:
    """Per-thread times over a stretch of work, sampled often so ended threads still count.

    Use as a context manager; :attr:`result` then holds :func:`delta` over the stretch.
    """

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.result: dict[str, dict[str, float]] = {}
        self._last: dict[int, ThreadTime] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="threadclock", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._last.update(snapshot())

    def __enter__(self) -> Sampler:
        self._before = snapshot()
        self._last = dict(self._before)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._last.update(snapshot())
        self._last.pop(self._thread.native_id or -1, None)
        self.result = delta(self._before, self._last)


def load() -> tuple[float, float, float]:
    """The machine's load averages (1, 5, 15 minutes)."""
    return os.getloadavg()
