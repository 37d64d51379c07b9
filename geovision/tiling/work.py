"""The unit of work of the tiling graph: one shard of tiles read, labelled and written."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from rasterio.windows import Window

from geovision.atomic import atomic_path
from geovision.formats import IGNORE_INDEX
from geovision.geo.raster import cached_open, valid_mask
from geovision.options.tile import TileOptions
from geovision.tiling.plan import TileRef, row_runs, run_window
from geovision.tiling.stats import BandStats
from geovision.tiling.store import open_group
from geovision.tiling.tasks import for_task

PROGRESS_DIR = ".geovision-progress"

# rasterize() burns into a scratch dataset that has no georeferencing of its own (the transform
# given places the shapes), and rasterio warns about it from worker threads, where a
# catch_warnings block would not be thread-safe: silence that one message where it is raised.
warnings.filterwarnings("ignore", message="Dataset has no geotransform",
                        category=NotGeoreferencedWarning, module="rasterio.features")


@dataclass(frozen=True)
class SourceFeatures:
    """The label features of one source that touch a shard, in that source's CRS.

    ``shapes`` (GeoJSON-like mappings, converted once per feature rather than once per task)
    and ``class_ids`` keep file order (later features are burned over earlier ones);
    ``pixel_boxes`` are the features' bounds in the source's pixel coordinates
    (col_min, row_min, col_max, row_max).
    """

    shapes: np.ndarray
    class_ids: np.ndarray
    pixel_boxes: np.ndarray


@dataclass(frozen=True)
class ShardWork:
    """Everything a worker needs to build one shard, in plain picklable values.

    Attributes:
        store: the in-progress store.
        index: the shard's index.
        start: index of its first tile in the store.
        tiles: its tiles.
        splits: their splits.
        paths: every source's path.
        transforms: every source's affine.
        bands: 1-based bands read.
        dtype: the store's pixel type.
        num_classes: classes, background included.
        options: the tiling options.
        features: label features touching the shard, per source index.
    """

    store: str
    index: int
    start: int
    tiles: tuple[TileRef, ...]
    splits: np.ndarray
    paths: tuple[str, ...]
    transforms: tuple[Affine, ...]
    bands: tuple[int, ...]
    dtype: str
    num_classes: int
    options: TileOptions
    features: dict[int, SourceFeatures] = field(default_factory=dict)


def marker_path(store: str | os.PathLike[str], index: int) -> Path:
    """Where a finished shard leaves its results (written last, atomically)."""
    return Path(store) / PROGRESS_DIR / f"shard-{index:06d}.npz"


def build_shard(work: ShardWork) -> int:
    """Read, label and write one shard of tiles; return the number of tiles written.

    The shard's arrays are written first, then a marker holding its statistics, labels counts
    and boxes; a shard with a marker is complete, so a resumed run skips it. How a tile is
    labelled is its task's (:mod:`geovision.tiling.tasks`).
    """
    task = for_task(work.options.task)
    n, size, nb = len(work.tiles), work.options.tile_size, len(work.bands)
    image = np.empty((n, nb, size, size), dtype=work.dtype)
    stats = BandStats.empty(nb)
    labels = task.shard_labels(n, size, work.num_classes, work.options)

    for run in row_runs(work.tiles, max_run=n):
        src = work.tiles[run[0]].source
        ds = cached_open(work.paths[src])
        span = run_window(work.tiles, run)
        window = Window(span.col, span.row, span.width, span.height)
        data = ds.read(list(work.bands), window=window)
        valid = valid_mask(ds, work.bands, window, data)
        feats = work.features.get(src)
        burned = None
        if task.burns:
            burned = _burn(feats, span.transform(work.transforms[src]),
                           (span.height, span.width))
            burned[~valid] = IGNORE_INDEX
        for i in run:
            w = work.tiles[i].window
            cols = slice(w.col - span.col, w.col - span.col + size)
            image[i] = data[:, :, cols]
            if work.splits[i] == 0:
                stats = stats.merge(BandStats.of(image[i], valid[:, cols]))
            labels.add(i, work.start + i, None if burned is None else burned[:, cols], feats,
                       w)

    group = open_group(work.store, "r+")
    stop = work.start + n
    group["image"][work.start:stop] = image
    labels.write(group, work.start, stop)

    class_pixels, class_tiles = labels.counts()
    boxes, box_label, box_tile = labels.boxes()
    marker = marker_path(work.store, work.index)
    marker.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {f"stats_{k}": v for k, v in stats.to_arrays().items()}
    with atomic_path(marker, keep_suffix=True) as tmp:
        np.savez(tmp, **arrays, class_pixels=class_pixels, class_tiles=class_tiles,
                 boxes=boxes, box_label=box_label, box_tile=box_tile)
    return n


def _burn(feats: SourceFeatures | None, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Class ids burned on a window's pixel grid (0 where no feature covers the pixel centre)."""
    if feats is None or len(feats.shapes) == 0:
        return np.zeros(shape, dtype=np.uint8)
    return rasterize(
        zip(feats.shapes, feats.class_ids.tolist(), strict=True),
        out_shape=shape, transform=transform, fill=0, dtype="uint8",
    )
