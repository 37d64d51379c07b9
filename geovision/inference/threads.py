"""The thread budget of inference: who gets the cores while the model runs.

On a CPU, torch runs the model on an OpenMP team of intra-op threads that meet at a barrier
after every parallel region. A pipeline thread that reads, blends or writes *while* the team
works takes a core from one team member, and the whole team waits for it at the next barrier:
the model slows by about the helper's CPU time, not by half of it (issue 15 measured the model
at 23.0 s inside the pipeline against 13.9 s alone). So the cores are shared in *time*, not in
space:

- ``spare`` (the CPU default on Linux): the model's thread works as in ``inline``, and one
  helper thread at idle priority (``SCHED_IDLE``, :mod:`geovision.inference.spare`) reads
  the next block and encodes finished strips ahead, in the moments the torch team leaves a
  core idle; the model's thread never waits for it (what the helper has not finished when
  it is needed, the model's thread does itself). On the 2-core machine it hid most of the
  reading and encoding behind the model (``benchmarks/profile_infer.py --path spare,inline``).
- ``inline`` (the CPU default elsewhere): no helper thread. The model's thread reads the next
  block and encodes the finished strips between blocks, each step with every core (GDAL
  decodes and encodes tiles on ``gdal`` threads; torch blends and finishes on its intra-op
  threads); nothing runs beside the model.
- ``split``: one helper thread reads and writes beside a torch team one thread smaller
  (``cores - 1``).
- ``overlap``: one helper thread beside a full torch team: today's layout, oversubscribed by
  one thread on a CPU; :func:`plan` offers it on a CPU only to measure against.

On CUDA the model runs on the device and the host thread only launches kernels and waits, so
helper threads (``overlap``) read and write while the device works: with three cores or more,
reading and writing get a lane each, so that reading, the model and writing all overlap; with
four or more, two threads read the next two blocks at once, and the cores left over encode
the outputs' strips and write the resume files as *prompt* spare-time helpers
(:class:`~geovision.inference.spare.SpareTime` at normal priority, ``encoders``): a small model
on a fast device runs a block faster than one thread reads or encodes it. Torch keeps one
intra-op thread for the little host-side work.

The budgets :func:`plan` picks by default never give more threads than cores to work that runs
at the same time: ``torch + helpers <= cores`` for concurrent strategies,
``max(torch, gdal) <= cores`` for ``inline`` and ``spare`` (their steps take turns; the
spare-time helper runs only on cores nobody else wants).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import rasterio

from geovision.inference.spare import NoSpareTime, SpareTime, idle_priority_available

STRATEGIES = ("spare", "inline", "split", "overlap")
#: Prompt encoder threads on CUDA at most.
MAX_ENCODERS = 8

T = TypeVar("T")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadBudget:
    """How many threads each kind of work gets.

    Attributes:
        strategy: ``inline``, ``split`` or ``overlap`` (see the module docstring).
        cores: cores available.
        torch: torch intra-op threads while the model runs.
        helpers: threads reading and writing beside the model (0: the model's own thread does
            it between blocks).
        gdal: GDAL threads decoding a read or encoding a strip.
        device: where the model runs; on CUDA its host thread mostly waits for the device.
        encoders: prompt helper threads encoding strips and writing resume files ahead (one
            GDAL thread each; CUDA only).
    """

    strategy: str
    cores: int
    torch: int
    helpers: int
    gdal: int
    device: str = "cpu"
    encoders: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"thread strategy '{self.strategy}': choose one of "
                             f"{', '.join(STRATEGIES)}")
        if min(self.cores, self.torch, self.gdal) < 1 or self.helpers < 0:
            raise ValueError(f"{self}: every count must be at least 1 (helpers at least 0)")
        if self.strategy in ("inline", "spare") and (self.helpers or max(
                self.torch, self.gdal) > self.cores):
            raise ValueError(f"{self}: {self.strategy} work takes turns on at most "
                             f"{self.cores} cores")

    @property
    def oversubscribed(self) -> bool:
        """True when the model's team and the helpers together want more than the cores.

        On CUDA the model's team is the device, not host cores.
        """
        team = 0 if self.device.startswith("cuda") else self.torch
        return self.helpers > 0 and (team + self.helpers * self.gdal + self.encoders
                                     > self.cores)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Set torch's intra-op threads for the duration (restored afterwards)."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.torch)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def spare_time(self) -> SpareTime | NoSpareTime:
        """Who works ahead: the idle-priority helper of ``spare``, the ``encoders``, or none."""
        if self.strategy == "spare":
            return SpareTime()
        if self.encoders:
            return SpareTime("geovision-encode", idle=False, threads=self.encoders)
        return NoSpareTime()

    @property
    def reads_ahead(self) -> int:
        """Blocks read ahead of the model: one per reading thread (see :meth:`lanes`)."""
        return max(1, self.helpers - 1)

    @contextmanager
    def lanes(self) -> Iterator[tuple[Executor, Executor]]:
        """Where blocks are read and where finished blocks are written.

        Two helpers or more: one writes (in submission order), the others read, so that the
        next blocks' reads overlap the last block's writing; one: both on it, in submission
        order; none: inline in the caller.
        """
        if self.helpers == 0:
            yield InlineExecutor(), InlineExecutor()
            return
        with ThreadPoolExecutor(self.reads_ahead, thread_name_prefix="geovision-read") as reads:
            if self.helpers == 1:
                yield reads, reads
                return
            with ThreadPoolExecutor(1, thread_name_prefix="geovision-write") as writes:
                yield reads, writes

    def gdal_env(self, threads: int | None = None) -> rasterio.Env:
        """GDAL options for a read: decode one request's tiles on ``gdal`` (or ``threads``)."""
        return rasterio.Env(GDAL_NUM_THREADS=str(threads or self.gdal))


def plan(device: str = "cpu", cores: int | None = None, strategy: str | None = None,
         ) -> ThreadBudget:
    """The thread budget for a device (see the module docstring for the choices).

    Args:
        device: ``cpu`` or a CUDA device.
        cores: cores to share (None: :func:`available_cores`).
        strategy: force ``spare``, ``inline``, ``split`` or ``overlap`` (None: the device's
            default: ``spare`` on a CPU where a thread may run at idle priority, else
            ``inline``; ``overlap`` on CUDA).

    Returns:
        The budget; only ``overlap`` forced on a CPU is oversubscribed.
    """
    n = cores or available_cores()
    cuda = device.startswith("cuda")
    strategy = strategy or ("overlap" if cuda else "spare" if idle_priority_available()
                            else "inline")
    if strategy == "spare" and not cuda:
        return ThreadBudget("spare", n, torch=n, helpers=0, gdal=n, device=device)
    if strategy in ("inline", "spare"):
        return ThreadBudget("inline", n, torch=1 if cuda else n, helpers=0, gdal=n,
                            device=device)
    if cuda:  # the device runs the model: the host's cores go to reading and writing (on a
        # lane each where there are cores for both), but for one that launches the kernels
        helpers = min(3, max(1, n - 1))
        gdal = max(1, (n - 1) // (2 * helpers))  # half the other cores; encoders get the rest
        encoders = min(MAX_ENCODERS, max(0, n - 1 - helpers * gdal))
        return ThreadBudget(strategy, n, torch=1, helpers=helpers, gdal=gdal,
                            device=device, encoders=encoders)
    if strategy == "overlap":
        return ThreadBudget("overlap", n, torch=n, helpers=1, gdal=1)
    return ThreadBudget("split", n, torch=max(1, n - 1), helpers=1, gdal=1)


class InlineExecutor(Executor):
    """An executor that runs each task at once, in the calling thread."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` now; return its result (or exception) as a future."""
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)
        return future
