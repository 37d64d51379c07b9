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

from geovision.geo.raster import cached_open, valid_mask
from geovision.geo.windows import PixelWindow
from geovision.tiling.plan import TileRef, row_runs, run_window
from geovision.tiling.stats import BandStats
from geovision.tiling.store import open_group

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
class ShardJob:
    """Everything a worker needs to build one shard, in plain picklable values."""

    store: str
    index: int
    start: int
    tiles: tuple[TileRef, ...]
    splits: np.ndarray
    paths: tuple[str, ...]
    transforms: tuple[Affine, ...]
    bands: tuple[int, ...]
    size: int
    task: str
    dtype: str
    num_classes: int
    ignore_index: int
    min_box_visible: float
    features: dict[int, SourceFeatures] = field(default_factory=dict)


def marker_path(store: str | os.PathLike[str], index: int) -> Path:
    """Where a finished shard leaves its results (written last, atomically)."""
    return Path(store) / PROGRESS_DIR / f"shard-{index:06d}.npz"


def build_shard(job: ShardJob) -> int:
    """Read, label and write one shard of tiles; return the number of tiles written.

    The shard's arrays are written first, then a marker holding its statistics, labels counts
    and boxes; a shard with a marker is complete, so a resumed run skips it.
    """
    n, size, nb = len(job.tiles), job.size, len(job.bands)
    image = np.empty((n, nb, size, size), dtype=job.dtype)
    burn_classes = job.task != "detection"
    mask = np.empty((n, size, size), dtype=np.uint8) if burn_classes else None
    stats = BandStats.empty(nb)
    k1 = job.num_classes
    class_pixels = np.zeros(k1, dtype=np.int64)
    class_tiles = np.zeros(k1, dtype=np.int64)
    labels = np.zeros(n, dtype=np.int16)
    boxes: list[np.ndarray] = []
    box_labels: list[np.ndarray] = []
    box_tiles: list[np.ndarray] = []

    for run in row_runs(job.tiles, max_run=n):
        src = job.tiles[run[0]].source
        ds = cached_open(job.paths[src])
        span = run_window(job.tiles, run)
        window = Window(span.col, span.row, span.width, span.height)
        data = ds.read(list(job.bands), window=window)
        valid = valid_mask(ds, job.bands, window, data)
        feats = job.features.get(src)
        if burn_classes:
            burned = _burn(feats, span.transform(job.transforms[src]),
                           (span.height, span.width))
            burned[~valid] = job.ignore_index
        for i in run:
            w = job.tiles[i].window
            cols = slice(w.col - span.col, w.col - span.col + size)
            image[i] = data[:, :, cols]
            tile_valid = valid[:, cols]
            if job.splits[i] == 0:
                stats = stats.merge(BandStats.of(image[i], tile_valid))
            if burn_classes and mask is not None:
                mask[i] = burned[:, cols]
                counts = np.bincount(mask[i].ravel(), minlength=256)[:k1]
                class_pixels += counts
                if job.task == "segmentation":
                    class_tiles += counts > 0
                labels[i] = int(np.argmax(counts)) if counts.any() else 0
            elif feats is not None:
                b, lab = _tile_boxes(feats, w, job.min_box_visible)
                if len(b):
                    boxes.append(b)
                    box_labels.append(lab)
                    box_tiles.append(np.full(len(b), job.start + i, dtype=np.int32))
                    class_tiles[np.unique(lab)] += 1
                    class_pixels += np.bincount(lab, minlength=k1)[:k1]

    group = open_group(job.store, "r+")
    stop = job.start + n
    group["image"][job.start:stop] = image
    if job.task == "segmentation" and mask is not None:
        group["mask"][job.start:stop] = mask
    if job.task == "classification":  # tiles per class: by each tile's label
        group["label"][job.start:stop] = labels
        class_tiles = np.bincount(labels, minlength=k1)[:k1].astype(np.int64)

    marker = marker_path(job.store, job.index)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp.npz")
    arrays: dict[str, Any] = {f"stats_{k}": v for k, v in stats.to_arrays().items()}
    np.savez(
        tmp,
        **arrays,
        class_pixels=class_pixels,
        class_tiles=class_tiles,
        boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32),
        box_label=np.concatenate(box_labels) if box_labels else np.zeros(0, np.int16),
        box_tile=np.concatenate(box_tiles) if box_tiles else np.zeros(0, np.int32),
    )
    os.replace(tmp, marker)
    return n


def _burn(feats: SourceFeatures | None, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Class ids burned on a window's pixel grid (0 where no feature covers the pixel centre)."""
    if feats is None or len(feats.shapes) == 0:
        return np.zeros(shape, dtype=np.uint8)
    return rasterize(
        zip(feats.shapes, feats.class_ids.tolist(), strict=True),
        out_shape=shape, transform=transform, fill=0, dtype="uint8",
    )


def _tile_boxes(
    feats: SourceFeatures, w: PixelWindow, min_visible: float
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of the features seen in a tile, in tile pixels, clipped to the tile.

    A box is kept when at least ``min_visible`` of its area lies inside the tile and it is at
    least one pixel wide and high there.
    """
    pb = feats.pixel_boxes
    if len(pb) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int16)
    shifted = pb - np.array([w.col, w.row, w.col, w.row], dtype=np.float64)
    clipped = shifted.copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], 0, w.width)
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], 0, w.height)
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    full = np.maximum((shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1]), 1e-12)
    keep = (cw >= 1) & (ch >= 1) & (cw * ch / full >= min_visible)
    return clipped[keep].astype(np.float32), feats.class_ids[keep].astype(np.int16)
