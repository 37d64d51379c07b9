"""A block of a scene from pixels to results: read, run the model, accumulate, store.

One code path, wherever the block runs: in this process (:func:`geovision.inference.pipeline.
run_scene` hands each block's payload to the scene's outputs as it finishes) or as one task on
a Dask worker (:func:`process_block`, which loads the model once per process through
:func:`~geovision.inference.predict.cached_bundle`). What the model's outputs become is the
task's (:mod:`geovision.inference.tasks`); where results are stored is
:mod:`geovision.inference.work`'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio

from geovision.inference.layout import Block, Piece
from geovision.inference.predict import cached_bundle
from geovision.inference.reader import normalize, read_region
from geovision.inference.staging import BatchStager
from geovision.inference.tasks import BlockResult, for_task
from geovision.inference.work import BlockData, SceneWork, marker
from geovision.inference.writers import save_array


def read_block(work: SceneWork, block: Block) -> BlockData:
    """Read and normalize a block's region (mirrored past the scene's edges)."""
    t0 = time.perf_counter()
    with rasterio.open(work.scene) as ds:
        data, valid = read_region(ds, work.bands, block.region)
    pixels = normalize(data, valid, work.mean, work.std)
    return BlockData(block, pixels, valid, time.perf_counter() - t0)


def stager(work: SceneWork) -> BatchStager:
    """The reused (pinned, on CUDA) batch buffers of a scene's blocks."""
    return BatchStager(work.options.batch_size, len(work.bands), work.window, work.device)


def store(work: SceneWork, block: Block, files: list[tuple[Path, np.ndarray]],
          seconds: dict[str, float]) -> None:
    """Write a block's files, then its marker (so a marker means every file is there)."""
    for path, array in files:
        save_array(path, array)
    marker(work.scratch, block).write_text(json.dumps(seconds))


def windows_with_data(data: BlockData, window: int) -> list[tuple[int, int]]:
    """The block's windows that hold at least one valid pixel, in order.

    Scenes with large nodata areas (the rotated footprint of a Landsat scene, the edge of a
    Sentinel-2 orbit, a mosaic's gaps) have many windows with none.
    """
    windows = data.block.windows
    if data.valid.all():  # most blocks: one reduction
        return list(windows)
    r0, c0 = data.block.region.row, data.block.region.col
    return [(r, c) for r, c in windows
            if data.valid[r - r0:r - r0 + window, c - c0:c - c0 + window].any()]


def predict_block(work: SceneWork, data: BlockData, pieces: list[Piece], batches: BatchStager,
                  on_batch: Callable[[int], None] | None = None,
                  ) -> tuple[BlockResult, float, float]:
    """Run the model over a block's windows and accumulate them into its results (not stored).

    Where the task allows it (``skips_empty``), windows without a valid pixel are not run:
    the pixels they cover that other windows do not are nodata in every output, and a valid
    pixel's blend never takes them in (outputs are the same bits).

    Args:
        work: the scene's work.
        data: the block's pixels, read and normalized.
        pieces: the pieces its windows reach.
        batches: the scene's batch buffers.
        on_batch: called with the number of windows after each batch.

    Returns:
        (the block's result, seconds in the model, seconds accumulating).
    """
    task = for_task(work.task)
    model = cached_bundle(work.model, work.device).model
    accumulator = task.accumulator(work, data, pieces)
    in_model = accumulating = 0.0
    region = data.block.region
    windows = (windows_with_data(data, work.window) if task.skips_empty
               else list(data.block.windows))
    if on_batch is not None and len(windows) < len(data.block.windows):
        on_batch(len(data.block.windows) - len(windows))  # done: nothing to predict there
    for origins, x in batches.batches(data.pixels, (region.row, region.col), windows):
        t0 = time.perf_counter()
        out = task.predict(model, x, work.options.tta)
        t1 = time.perf_counter()
        accumulator.add(origins, out)
        in_model += t1 - t0
        accumulating += time.perf_counter() - t1
        if on_batch is not None:
            on_batch(len(origins))
    t2 = time.perf_counter()
    result = accumulator.results()
    return result, in_model, accumulating + time.perf_counter() - t2


def process_block(work: SceneWork, block: Block, pieces: list[Piece]) -> dict[str, float]:
    """Read, predict and store one block in turn (one task on a Dask worker).

    Returns:
        Seconds spent reading, in the model, blending and writing.
    """
    data = read_block(work, block)
    result, model, blend = predict_block(work, data, pieces, stager(work))
    t0 = time.perf_counter()
    seconds = {"read": data.seconds, "model": model, "blend": blend, "write": 0.0}
    store(work, block, result.files, seconds)
    seconds["write"] = time.perf_counter() - t0
    return seconds
