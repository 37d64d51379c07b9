"""Running a scene's blocks in this process, the cores shared in time with the model.

Blocks run in the layout's order. Each is read (or, when an earlier run finished it, its
stored payload is loaded), run through the model batch by batch, blended in place, stored in
the scratch folder (files, then its marker: ``--resume`` starts from there) and handed to the
scene's sink, which writes the outputs' strips as they complete. Who runs what is the thread
budget's (:mod:`geovision.inference.threads`): on a CPU the model's thread reads the next
block and writes the finished one between blocks, each step with every core, so that nothing
competes with torch's threads while the model runs, and (``spare``) a helper at idle
priority reads the next block ahead and encodes strips in the moments a core is idle
(:mod:`geovision.inference.spare`); on CUDA helper threads read the next block and write the
last one while the device runs the model.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any

from geovision.inference.blocks import predict_block, read_block, stager, store
from geovision.inference.heap import steady_heap
from geovision.inference.layout import Block, Layout, block_pieces
from geovision.inference.spare import CALLER, NoSpareTime, SpareTime, Ticket
from geovision.inference.tasks import BlockResult, SceneSink, for_task
from geovision.inference.threads import ThreadBudget
from geovision.inference.work import BlockData, SceneWork, Timings

#: Finished blocks waiting to be written at most (their payloads are held in memory).
WRITES_IN_FLIGHT = 2
#: Blocks whose files for ``--resume`` may wait for spare time (their payloads are held).
STORES_AHEAD = 1


def run_scene(work: SceneWork, layout: Layout, todo: Sequence[Block], sink: SceneSink,
              budget: ThreadBudget, on_batch: Callable[[int], None] | None = None,
              spare: SpareTime | NoSpareTime | None = None) -> Timings:
    """Run the blocks still to do, and feed every block's payload to the sink, in order.

    Args:
        work: the scene's work.
        layout: the scene's layout.
        todo: the blocks to run (the others were stored by an earlier run).
        sink: the scene's outputs.
        budget: the threads of the model, reading and writing.
        on_batch: called with the window count of each batch once the model has run it.
        spare: the spare-time helper of the ``spare`` strategy (the sink's too): the next
            block is read ahead there.

    Returns:
        Seconds spent in each stage (summed over blocks).
    """
    task = for_task(work.task)
    timings = Timings()
    run = {b.index for b in todo}
    batches = stager(work)
    blend = 0.0

    def fetch(block: Block, who: str = CALLER) -> Any:
        if block.index not in run:  # stored by an earlier run
            t0 = time.perf_counter()
            payload = task.load_block(work, layout, block)
            timings.read += time.perf_counter() - t0
            return payload
        with budget.gdal_env(None if who == CALLER else 1):
            data = read_block(work, block)
        timings.read += data.seconds
        return data

    helper = spare if isinstance(spare, SpareTime) else None

    def read_next(block: Block, reads: Executor) -> Callable[[], Any]:
        """Start the next block's read; return what gives it when the model needs it."""
        if helper is not None and helper.idle and block.index in run:
            return helper.submit(functools.partial(fetch, block)).claim  # never waits
        return reads.submit(fetch, block).result

    # with a helper, a block's files for --resume are written in spare time (the sink only
    # reads the arrays meanwhile) and claimed a block later; without one, at once
    stores: list[Ticket[None]] = []

    def claim_stores(keep: int) -> None:
        """Claim all but the newest ``keep`` stores (at the end, waiting for the helper's)."""
        while len(stores) > keep:
            t0 = time.perf_counter()
            stores.pop(0).claim(wait=None if keep else True)
            timings.extra["store"] = timings.extra.get("store", 0.0) + (
                time.perf_counter() - t0)

    def write(block: Block, result: BlockResult | None, payload: Any,
              seconds: dict[str, float]) -> None:
        if result is not None:
            files = result.files
            stores.append((helper or NoSpareTime()).submit(
                lambda who: store(work, block, files, seconds)))
            claim_stores(STORES_AHEAD if helper else 0)
        sink.add(block, payload)

    blocks = layout.blocks
    if not blocks:
        return timings
    with budget.applied(), steady_heap(), budget.lanes() as (reads, writes_to):
        pending: list[Callable[[], Any]] = [reads.submit(fetch, blocks[0]).result]
        pending += [read_next(b, reads) for b in blocks[1:budget.reads_ahead]]
        writes: list[Future[None]] = []
        for i, block in enumerate(blocks):
            job: tuple[Block, BlockResult | None, Any, dict[str, float]]
            got = pending.pop(0)()
            if i + budget.reads_ahead < len(blocks):
                pending.append(read_next(blocks[i + budget.reads_ahead], reads))
            if isinstance(got, BlockData):
                read = got.seconds
                result, model, blending = predict_block(
                    work, got, block_pieces(block, layout.pieces), batches, on_batch)
                del got
                timings.model += model
                blend += blending
                job = (block, result, result.payload,
                       {"read": read, "model": model, "blend": blending})
            else:
                job = (block, None, got, {})
            if len(writes) >= WRITES_IN_FLIGHT:
                writes.pop(0).result()
            writes.append(writes_to.submit(write, *job))
        for f in writes:
            f.result()
        claim_stores(0)
    timings.extra["blend"] = blend
    return timings
