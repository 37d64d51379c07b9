"""The one place that turns ``--scheduler`` / ``--workers`` into a Dask client, and runs graphs.

Without a scheduler address, graphs run on Dask's threaded scheduler in this process (GDAL,
rasterize, compression and torch release the GIL, so threads use every core without copying
data between processes). With an address, they run on that distributed cluster, whose workers
must see the same files (shared storage).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dask
from dask.callbacks import Callback
from dask.delayed import Delayed

from geovision.errors import InputError
from geovision.progress import progress_bar

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Workers used when ``--workers`` is not given: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def dask_client(scheduler: str | None, workers: int | None = None) -> Iterator[Any]:
    """Connect to a distributed scheduler, or yield None for the threaded scheduler.

    Args:
        scheduler: address such as ``tcp://host:8786``, or None.
        workers: thread count for the local threaded scheduler (None: every core).

    Raises:
        InputError: the scheduler cannot be reached.
    """
    if not scheduler:
        yield None
        return
    from distributed import Client

    _check_reachable(scheduler)
    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise InputError(
            f"--scheduler {scheduler}: cannot connect ({exc}); check the address and that "
            "`dask scheduler` is running"
        ) from exc
    try:
        yield client
    finally:
        client.close()


def _check_reachable(address: str) -> None:
    """Fail at once when nothing listens at a tcp:// address (Client would wait its timeout).

    Raises:
        InputError: the address is malformed or the port refuses connections.
    """
    if not address.startswith("tcp://"):
        return
    host, _, port = address[len("tcp://"):].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10):
            pass
    except ValueError as exc:
        raise InputError(f"--scheduler {address}: expected tcp://host:port") from exc
    except OSError as exc:
        raise InputError(
            f"--scheduler {address}: cannot connect ({exc.strerror or exc}); check the address "
            "and that `dask scheduler` is running"
        ) from exc


class _TaskProgress(Callback):
    """Advances a progress bar as the named tasks of a threaded graph finish."""

    def __init__(self, weights: dict[Any, int], advance: Callable[[int], Any]) -> None:
        super().__init__()
        self._weights = weights
        self._advance = advance

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        weight = self._weights.get(key)
        if weight:
            self._advance(weight)


def task(key: str, func: Callable[..., Any], *args: Any,
         deps: Sequence[Delayed] = ()) -> Delayed:
    """One task of a graph, built directly: its arguments are taken as they are.

    ``dask.delayed`` walks and hashes every argument to find nested collections and name the
    task, which costs more than the work for arguments holding thousands of windows or
    geometries; our arguments never hold Dask collections, so the graph is spelled out.

    Args:
        key: the task's unique name.
        func: what it runs.
        *args: plain arguments.
        deps: tasks whose results are passed, as one list, after ``args``.
    """
    graph: dict[Any, Any] = {}
    for dep in deps:
        graph.update(dict(dep.__dask_graph__()))
    graph[key] = (func, *args, [dep.key for dep in deps]) if deps else (func, *args)
    return Delayed(key, graph)


#: Environment variable giving torch threads per task on Dask workers (default 1).
TORCH_THREADS_ENV = "GEOVISION_TORCH_THREADS"


def worker_threads() -> None:
    """On a Dask worker, keep torch to its share of the cores (once per process).

    A worker runs ``--nthreads`` tasks at a time and a machine usually runs several workers,
    so each task's torch gets one thread unless ``GEOVISION_TORCH_THREADS`` says otherwise;
    scale out with worker processes (``dask worker --nworkers N --nthreads 1``).
    """
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return
    import torch

    wanted = max(1, int(os.environ.get(TORCH_THREADS_ENV, "1")))
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def run_graph(
    tasks: Sequence[Delayed],
    *,
    client: Any = None,
    workers: int | None = None,
    desc: str = "tasks",
    unit: str = "task",
    weights: Sequence[int] | None = None,
    quiet: bool = False,
) -> list[Any]:
    """Compute delayed tasks in parallel with a progress bar, returning results in order.

    Args:
        tasks: the graph's outputs, one per unit of work.
        client: a distributed client, or None for the threaded scheduler.
        workers: threads for the threaded scheduler.
        desc: progress bar label.
        unit: what the bar counts.
        weights: units each task accounts for (default 1 each), e.g. tiles per shard.
        quiet: hide the bar.
    """
    if not tasks:
        return []
    counts = list(weights) if weights is not None else [1] * len(tasks)
    with progress_bar(total=sum(counts), desc=desc, unit=unit, disable=quiet) as bar:
        if client is None:
            by_key = {t.key: n for t, n in zip(tasks, counts, strict=True)}
            with _TaskProgress(by_key, bar.update):
                results = dask.compute(
                    *tasks, scheduler="threads", num_workers=workers or default_workers()
                )
            return list(results)
        from distributed import as_completed

        futures = client.compute(list(tasks))
        index = {f.key: i for i, f in enumerate(futures)}
        out: list[Any] = [None] * len(futures)
        for future in as_completed(futures):
            i = index[future.key]
            out[i] = future.result()
            bar.update(counts[i])
        return out
