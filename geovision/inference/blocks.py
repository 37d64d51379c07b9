"""A block of a scene from pixels to stored results: read, run the model, accumulate, store.

A block can run in this process (:mod:`geovision.inference.pipeline` overlaps reading,
the model and writing) or as one task on a Dask worker (:func:`process_block`), which loads
the model once per process through :func:`~geovision.inference.predict.cached_bundle`. What
the model's outputs become is the task's (:mod:`geovision.inference.tasks`); where results are
stored is :mod:`geovision.inference.work`'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import rasterio

from geovision.inference.layout import Block, Piece
from geovision.inference.predict import cached_bundle
from geovision.inference.reader import normalize, read_region
from geovision.inference.tasks import for_task
from geovision.inference.work import BlockData, SceneWork, marker
from geovision.inference.writers import save_array


def read_block(work: SceneWork, block: Block) -> BlockData:
    """Read and normalize a block's region (mirrored past the scene's edges)."""
    t0 = time.perf_counter()
    with rasterio.open(work.scene) as ds:
        data, valid = read_region(ds, work.bands, block.region)
    pixels = normalize(data, valid, work.mean, work.std)
    return BlockData(block, pixels, valid, time.perf_counter() - t0)


def window_batches(work: SceneWork, data: BlockData,
                   ) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
    """The block's windows in batches: (origins, ``(N, bands, window, window)`` float32)."""
    region, w = data.block.region, work.window
    wins = list(data.block.windows)
    size = work.options.batch_size
    for i in range(0, len(wins), size):
        chunk = wins[i:i + size]
        batch = np.stack([
            data.pixels[:, r - region.row:r - region.row + w, c - region.col:c - region.col + w]
            for r, c in chunk])
        yield chunk, batch


def store(work: SceneWork, block: Block, results: list[tuple[Path, np.ndarray]],
          seconds: dict[str, float]) -> None:
    """Write a block's results, then its marker (so a marker means every file is there)."""
    for path, array in results:
        save_array(path, array)
    marker(work.scratch, block).write_text(json.dumps(seconds))


def block_pieces(block: Block, pieces: tuple[Piece, ...]) -> list[Piece]:
    """The pieces a block's windows reach."""
    return [p for p in pieces if block.index in p.owners]


def predict_block(work: SceneWork, data: BlockData, pieces: list[Piece],
                  on_batch: Callable[[int], None] | None = None,
                  ) -> tuple[list[tuple[Path, np.ndarray]], float, float]:
    """Run the model over a block's windows and accumulate them into its results (not stored).

    Args:
        work: the scene's work.
        data: the block's pixels, read and normalized.
        pieces: the pieces its windows reach.
        on_batch: called with the number of windows after each batch.

    Returns:
        (the files to store, seconds in the model, seconds accumulating).
    """
    task = for_task(work.task)
    model = cached_bundle(work.model, work.device).model
    accumulator = task.accumulator(work, data, pieces)
    in_model = accumulating = 0.0
    for origins, batch in window_batches(work, data):
        t0 = time.perf_counter()
        out = task.predict(model, batch, work.device, work.options.tta)
        t1 = time.perf_counter()
        accumulator.add(origins, out)
        in_model += t1 - t0
        accumulating += time.perf_counter() - t1
        if on_batch is not None:
            on_batch(len(origins))
    t2 = time.perf_counter()
    results = accumulator.results()
    return results, in_model, accumulating + time.perf_counter() - t2


def process_block(work: SceneWork, block: Block, pieces: list[Piece]) -> dict[str, float]:
    """Read, predict and store one block in turn (one task on a Dask worker).

    Returns:
        Seconds spent reading, in the model and writing.
    """
    data = read_block(work, block)
    results, model, blend = predict_block(work, data, pieces)
    t0 = time.perf_counter()
    seconds = {"read": data.seconds, "model": model, "write": blend}
    store(work, block, results, seconds)
    seconds["write"] += time.perf_counter() - t0
    return seconds
