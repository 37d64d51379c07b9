"""One block read, labelled and encoded in memory: the work of a one-pass tiling task.

:func:`encode_block` reads a :class:`~geovision.tiling.blocks.Block` once and returns a
:class:`BlockResult`: the valid fraction of each of its candidate tiles and, for the tiles
that reach ``min_valid``, their ``image`` and ``mask`` chunks encoded with the store's codecs
(:mod:`geovision.tiling.shards`) and their :class:`TileFigures` (statistics, class counts,
label, boxes). Which tiles the dataset finally holds, and where, depends on every block
(``--min-valid`` and the split draw), so writing is left to the caller.

What is computed:

* valid fraction ``= valid pixels / size**2`` (float64 division, stored as float32), kept when
  ``fraction >= min_valid`` and ``fraction > 0``; with an area of interest a pixel counts
  when it is valid and its centre lies inside (:func:`geovision.geo.aoi.aoi_mask`), and
  ``inside_only`` (detection) keeps only tiles wholly inside;
* mask: labels burned on the block's grid (:func:`geovision.tiling.burn.burn`), ``255`` where
  the source is not valid or outside the AOI; label (classification) ``= argmax`` of the
  class counts (a tile whose every pixel is ignored has no class and is not made); pixels of
  a label raster whose values were dropped are counted per tile;
* statistics: :meth:`BandStats.of` of the tile over its valid pixels (for every kept tile: the
  split is not known yet; the summary merges those of train tiles);
* boxes (detection): :func:`geovision.tiling.tasks.detection.tile_boxes` of the features meeting the
  block.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from geovision.geo.aoi import aoi_mask
from geovision.geo.grid import Grid
from geovision.geo.raster import cached_open, valid_mask
from geovision.geo.windows import PixelWindow
from geovision.tiling.blocks import Block, valid_counts
from geovision.tiling.burn import BlockLabels, burn_counted
from geovision.tiling.shards import ShardLayout, encode_chunk
from geovision.tiling.stats import BandStats, tile_stats
from geovision.tiling.tasks import for_task
from geovision.tiling.tasks.detection import tile_boxes

STATS = ("count", "mean", "m2", "min", "max")


#: Labels known later: called with the block once it is read, gives the features meeting it
#: and the number of classes (lets a local run decode while the labels are still being read).
LateLabels = Callable[[Block], tuple[BlockLabels | None, int]]


@dataclass(frozen=True)
class BlockJob:
    """Everything a worker needs to read and encode one block.

    Plain picklable values, except ``labels`` given as :data:`LateLabels` (local runs only),
    in which case ``num_classes`` is taken from it too. ``aoi`` is the area of interest near
    the block in the source's CRS ``crs`` (None: none); ``inside_only`` keeps only tiles
    wholly inside it.
    """

    index: int
    path: str
    transform: Affine
    block: Block
    bands: tuple[int, ...]
    size: int
    task: str
    dtype: str
    min_valid: float
    ignore_index: int
    num_classes: int
    min_box_visible: float
    labels: BlockLabels | LateLabels | None
    image: ShardLayout
    mask: ShardLayout | None
    crs: CRS | None = None
    aoi: shapely.Geometry | None = None
    inside_only: bool = False


@dataclass(frozen=True)
class TileFigures:
    """What the summary needs of a run of tiles, one row per tile (boxes: one per box).

    Attributes:
        count, mean, m2, min, max: :class:`BandStats` of each tile, ``(tiles, bands)``.
        class_counts: pixels of each class ``(tiles, classes)`` (detection: boxes).
        label: the tile's class (classification).
        dropped: pixels of each tile whose label raster value a class map dropped.
        n_boxes: boxes of each tile (detection).
        boxes: the boxes of every tile, in tile order, ``(boxes, 4)`` float32.
        box_label: their classes, int16.
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray
    class_counts: np.ndarray
    label: np.ndarray
    dropped: np.ndarray
    n_boxes: np.ndarray
    boxes: np.ndarray
    box_label: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def stats(self, i: int) -> BandStats:
        """Statistics of tile ``i``."""
        return BandStats(self.count[i], self.mean[i], self.m2[i], self.min[i], self.max[i])

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Plain arrays, for ``np.savez``."""
        return {prefix + f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str = "") -> TileFigures:
        """Inverse of :meth:`to_arrays` (``arrays`` may be an open ``.npz``)."""
        return cls(**{f.name: np.asarray(arrays[prefix + f.name]) for f in fields(cls)})

    @classmethod
    def concat(cls, parts: list[TileFigures], bands: int, classes: int) -> TileFigures:
        """The figures of several runs of tiles, in order."""
        if not parts:
            return cls.empty(bands, classes)
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                      for f in fields(cls)})

    @classmethod
    def empty(cls, bands: int, classes: int, n: int = 0) -> TileFigures:
        """Figures of ``n`` tiles, zero-filled."""
        return cls(
            count=np.zeros((n, bands), np.int64), mean=np.zeros((n, bands)),
            m2=np.zeros((n, bands)), min=np.zeros((n, bands)), max=np.zeros((n, bands)),
            class_counts=np.zeros((n, classes), np.int64), label=np.zeros(n, np.int16),
            dropped=np.zeros(n, np.int64), n_boxes=np.zeros(n, np.int64),
            boxes=np.zeros((0, 4), np.float32),
            box_label=np.zeros(0, np.int16),
        )

    def take(self, idx: np.ndarray) -> TileFigures:
        """The figures of tiles ``idx`` (ascending), with their boxes."""
        starts = np.concatenate([[0], np.cumsum(self.n_boxes)])
        box_rows = (np.concatenate([np.arange(starts[i], starts[i + 1]) for i in idx])
                    if len(idx) and len(self.boxes) else np.zeros(0, np.int64))
        return TileFigures(
            count=self.count[idx], mean=self.mean[idx], m2=self.m2[idx], min=self.min[idx],
            max=self.max[idx], class_counts=self.class_counts[idx], label=self.label[idx],
            dropped=self.dropped[idx], n_boxes=self.n_boxes[idx], boxes=self.boxes[box_rows],
            box_label=self.box_label[box_rows],
        )


@dataclass
class BlockResult:
    """A block read and encoded.

    Attributes:
        tiles: candidate indices of its tiles, ascending.
        valid: valid fraction of each (float32).
        kept: which reach ``min_valid`` (and hold a valid pixel).
        chunks: per kept tile, its ``image`` and ``mask`` chunk bytes (None: not stored).
        figures: per kept tile, its figures.
    """

    tiles: np.ndarray
    valid: np.ndarray
    kept: np.ndarray
    chunks: list[tuple[bytes | None, bytes | None]]
    figures: TileFigures


class _Scratch(threading.local):
    """Buffers of one thread, reused from block to block.

    Fresh 16 MB arrays cost page faults: a quarter of a second per 256 MB copied into them.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}


_SCRATCH = _Scratch()


def scratch(key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A C-contiguous array of ``shape`` owned by this thread (content undefined).

    It stays valid until this thread asks for ``key`` again.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = _SCRATCH.buffers.get(key)
    if buf is None or buf.nbytes < size:
        buf = np.empty(max(size, 1), dtype=np.uint8)
        _SCRATCH.buffers[key] = buf
    return buf[:size].view(dtype).reshape(shape)


def class_counts(masks: np.ndarray, k1: int) -> np.ndarray:
    """Pixels of each class ``0..k1-1`` in each of ``(tiles, rows, cols)`` masks.

    Row ``i`` equals ``np.bincount(masks[i].ravel(), minlength=256)[:k1]``. Up to 16 classes,
    one ``count_nonzero`` per tile and class is faster than a bincount (which widens every
    uint8 to 64 bits): 0.06 against 0.27 ms for a 256 x 256 tile of 5 classes (with an
    ``axis``, ``count_nonzero`` sums booleans and is 4 times slower).
    """
    n = len(masks)
    if k1 <= 16:
        return np.array([[np.count_nonzero(m == v) for v in range(k1)] for m in masks],
                        dtype=np.int64).reshape(n, k1)
    return np.stack([np.bincount(m.ravel(), minlength=256)[:k1] for m in masks]
                    ).astype(np.int64).reshape(n, k1)


def encode_block(job: BlockJob) -> BlockResult:
    """Read, label and encode one block (see the module docstring)."""
    b, s = job.block, job.size
    w = b.window
    ds = cached_open(job.path)
    window = Window(w.col, w.row, w.width, w.height)
    data = ds.read(list(job.bands), window=window,
                   out=scratch("data", (len(job.bands), w.height, w.width), ds.dtypes[0]))
    valid = valid_mask(ds, job.bands, window, data)
    all_valid = bool(valid.all())
    use = valid
    if job.aoi is not None:
        inside = aoi_mask(job.aoi, Grid(job.crs, w.transform(job.transform), w.width,
                                        w.height))
        use = valid & inside
    all_used = bool(use.all())
    fractions = (valid_counts(use, b.rows, b.cols, s) / (s * s)).astype(np.float32)
    keep = (fractions >= job.min_valid) & (fractions > 0)
    if job.inside_only and job.aoi is not None:
        keep &= valid_counts(inside, b.rows, b.cols, s) == s * s
    kept = np.flatnonzero(keep)
    nb, n = len(job.bands), len(kept)
    rows, cols = b.rows[kept], b.cols[kept]
    tiles = scratch("tiles", (n, nb, s, s), job.dtype)  # the kept tiles, each contiguous
    for j in range(n):
        tiles[j] = data[:, rows[j]:rows[j] + s, cols[j]:cols[j] + s]
    tile_valid = None if all_valid else [valid[r:r + s, c:c + s] for r, c in zip(rows, cols,
                                                                                 strict=True)]
    stats = tile_stats(tiles, tile_valid)
    images = [encode_chunk(job.image, tiles[j]) for j in range(n)]
    # Labels last: a local run may still be reading them while the first blocks decode.
    labels, k1 = job.labels, job.num_classes
    if callable(labels):
        labels, k1 = labels(b)
    fig = TileFigures(**stats, **{k: v for k, v in TileFigures.empty(nb, k1, n).__dict__.items()
                                  if k not in stats})
    burned = None
    if for_task(job.task).burns:
        burned, dropped_at = burn_counted(labels, w, job.transform)
        if not all_used:
            np.copyto(burned, np.uint8(job.ignore_index), where=~use)
        if dropped_at is not None:
            dropped_at &= use
            fig.dropped[:] = valid_counts(dropped_at, rows, cols, s)
    chunks: list[tuple[bytes | None, bytes | None]] = [(image, None) for image in images]
    if burned is not None:
        masks = scratch("masks", (n, s, s), np.uint8)
        for j in range(n):
            masks[j] = burned[rows[j]:rows[j] + s, cols[j]:cols[j] + s]
        counts = class_counts(masks, k1)
        fig.class_counts[:] = counts
        fig.label[:] = np.where(counts.any(axis=1), np.argmax(counts, axis=1), 0)
        if job.mask is not None:
            chunks = [(image, encode_chunk(job.mask, masks[j]))
                      for j, (image, _) in enumerate(chunks)]
        unlabelled = ~counts.any(axis=1)
        if for_task(job.task).stores_label and unlabelled.any():
            # every pixel ignored (outside the AOI, or unlabelled with --unlabeled ignore):
            # the tile has no class, so it is not made
            keep[kept[unlabelled]] = False
            labelled = np.flatnonzero(~unlabelled)
            chunks = [chunks[j] for j in labelled]
            fig = fig.take(labelled)
    elif labels is not None:
        boxes, box_labels = [], []
        for j in range(n):
            bx, lab = tile_boxes(labels.pixel_boxes, labels.values,
                                 PixelWindow(w.row + int(rows[j]), w.col + int(cols[j]), s, s),
                                 job.min_box_visible)
            fig.n_boxes[j] = len(bx)
            if len(bx):
                boxes.append(bx)
                box_labels.append(lab)
                fig.class_counts[j] = np.bincount(lab, minlength=k1)[:k1]
        if boxes:
            fig = TileFigures(**{**fig.__dict__, "boxes": np.concatenate(boxes),
                                 "box_label": np.concatenate(box_labels)})
    return BlockResult(tiles=b.tiles, valid=fractions, kept=keep, chunks=chunks, figures=fig)


def save_npz(path: Path, arrays: dict[str, Any]) -> None:
    """Save arrays as ``.npz`` under a temporary name, then rename (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
