"""Running a scene's blocks in this process with reading, the model and writing overlapped.

Three stages connected by bounded queues: a reader thread reads and normalizes the next
block; the calling thread runs the model batch by batch and blends its outputs with torch on
the model's device (on a CPU, work in other threads would stall torch's own threads, so it
stays here); a writer thread stores the finished block. GDAL, numpy and torch release the
GIL, so the stages run at the same time, and at most three blocks are held at once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from geovision.inference.blocks import predict_block, read_block, store
from geovision.inference.layout import Block, Piece
from geovision.inference.work import BlockData, SceneWork, Timings

_DONE = object()


class _Stage(threading.Thread):
    """A daemon thread that records the exception that ended it."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._body = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._body()
        except BaseException as exc:  # handed over to the main thread
            self.error = exc


def _put(q: queue.Queue[Any], item: Any, stages: Sequence[_Stage]) -> None:
    """Put into a bounded queue without blocking forever if another stage has failed."""
    while True:
        _raise_failed(stages)
        try:
            q.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue[Any], stages: Sequence[_Stage]) -> Any:
    while True:
        _raise_failed(stages)
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            continue


def _raise_failed(stages: Sequence[_Stage]) -> None:
    for stage in stages:
        if stage.error is not None:
            raise stage.error


def run_blocks(work: SceneWork, blocks: Sequence[Block], pieces: Callable[[Block], list[Piece]],
               on_batch: Callable[[int], None] | None = None) -> Timings:
    """Run blocks through the read / model / write stages.

    Args:
        work: the scene's work.
        blocks: the blocks to run, in order.
        pieces: the pieces of a block (segmentation).
        on_batch: called with the window count of each batch once the model has run it.

    Returns:
        Seconds spent in each stage (summed over blocks; the stages overlap in time).
    """
    timings = Timings()
    reads: queue.Queue[Any] = queue.Queue(maxsize=1)
    writes: queue.Queue[Any] = queue.Queue(maxsize=1)
    stages: list[_Stage] = []

    def read() -> None:
        for block in blocks:
            data = read_block(work, block)
            timings.read += data.seconds
            _put(reads, data, [stages[1]])
        _put(reads, _DONE, [stages[1]])

    def write() -> None:
        while True:
            item = _get(writes, [])
            if item is _DONE:
                return
            t0 = time.perf_counter()
            store(work, *item)
            timings.write += time.perf_counter() - t0

    stages.extend([_Stage(read, "geovision-read"), _Stage(write, "geovision-write")])
    for stage in stages:
        stage.start()
    try:
        while True:
            data = _get(reads, stages)
            if data is _DONE:
                break
            assert isinstance(data, BlockData)
            results, model, blend = predict_block(work, data, pieces(data.block), on_batch)
            timings.model += model
            timings.extra["blend"] = timings.extra.get("blend", 0.0) + blend
            _put(writes, (data.block, results, {"read": data.seconds, "model": model,
                                                "blend": blend}), stages)
        _put(writes, _DONE, stages)
        while stages[1].is_alive():
            stages[1].join(timeout=0.2)
            _raise_failed(stages)
        _raise_failed(stages)
    finally:
        if stages[1].is_alive():  # failed elsewhere: let the writer end
            try:
                writes.put_nowait(_DONE)
            except queue.Full:
                pass
    return timings
