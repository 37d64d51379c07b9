"""The two kinds of task of the one-pass tiling path: read a block, then assemble shards.

**Block task** (:func:`run_block`, one per :class:`~geovision.tiling.blocks.Block`): the
block's pixels are read once; the valid fraction of each of its candidate tiles is measured;
the tiles that reach ``min_valid`` are labelled (labels burned once on the block's grid),
their ``image`` and ``mask`` chunks encoded with the store's codecs, and their statistics,
class counts, label and boxes computed. Which tiles the dataset finally holds, and where,
depends on every block (splits are dealt over all kept tiles), so the encoded chunks go to a
*spill* file, in kept-tile order, and everything else to a marker::

    pass/block-<i>.bin   chunk bytes, concatenated
    pass/block-<i>.npz   tiles (candidate indices, ascending), valid (float32 fraction per
                         candidate), kept (bool per candidate); per kept tile: spans
                         (offset, nbytes of the image chunk, offset, nbytes of the mask chunk;
                         nbytes 0 = not stored), stats_{count,mean,m2,min,max} (per band),
                         class_counts, label, n_boxes; boxes, box_label (every kept tile's
                         boxes, in tile order)

Both are written under temporary names and renamed, the marker last: a block with a marker is
done, and a resumed run skips it.

**Shard task** (:func:`run_shards`, one per range of final shards): once the final tile list
is known, each shard's chunk bytes are copied from the spill files (in the kernel with
``copy_file_range``: no decoding, no encoding, no copy through Python),
assembled into one shard object and written; then the shard's marker, in the format of the
classic shard pass (:func:`geovision.tiling.work.marker_path`): statistics of its train tiles
merged tile by tile in order, class counts, boxes with their final tile index. The statistics
are therefore bit-identical to the classic path's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

from geovision.geo.raster import cached_open, valid_mask
from geovision.geo.windows import PixelWindow
from geovision.tiling.blocks import Block, valid_counts
from geovision.tiling.burn import BlockLabels, burn
from geovision.tiling.shards import (
    FileRange,
    ShardLayout,
    encode_chunk,
    write_all,
    write_shard,
)
from geovision.tiling.stats import BandStats
from geovision.tiling.work import SourceFeatures, _tile_boxes, marker_path

STATS = ("count", "mean", "m2", "min", "max")


def block_paths(progress: str | os.PathLike[str], index: int) -> tuple[Path, Path]:
    """Spill file and marker of block ``index``."""
    base = Path(progress) / "pass" / f"block-{index:06d}"
    return base.with_suffix(".bin"), base.with_suffix(".npz")


@dataclass(frozen=True)
class BlockJob:
    """Everything a worker needs to read and encode one block (plain picklable values)."""

    progress: str
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
    labels: BlockLabels | None
    image: ShardLayout
    mask: ShardLayout | None


def class_counts(mask: np.ndarray, k1: int) -> np.ndarray:
    """Pixels of each class ``0..k1-1`` in a mask: ``np.bincount(mask, minlength=256)[:k1]``.

    For a few classes, one ``count_nonzero`` per class is several times faster than a
    bincount (which widens every uint8 to 64 bits).
    """
    if k1 <= 8:
        return np.array([np.count_nonzero(mask == v) for v in range(k1)], dtype=np.int64)
    return np.bincount(mask.ravel(), minlength=256)[:k1].astype(np.int64)


def _write_atomic(path: Path, parts: list[bytes]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, parts)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def run_block(job: BlockJob) -> int:
    """Read, label and encode one block; write its spill file and marker.

    Returns:
        Candidate tiles handled (for the progress bar).
    """
    b, s = job.block, job.size
    w = b.window
    ds = cached_open(job.path)
    window = Window(w.col, w.row, w.width, w.height)
    data = ds.read(list(job.bands), window=window)
    valid = valid_mask(ds, job.bands, window, data)
    fractions = (valid_counts(valid, b.rows, b.cols, s) / (s * s)).astype(np.float32)
    keep = (fractions >= job.min_valid) & (fractions > 0)
    kept = np.flatnonzero(keep)
    burned = None
    if job.task != "detection":
        burned = burn(job.labels, w, job.transform)
        burned[~valid] = job.ignore_index
    nb, k1, n = len(job.bands), job.num_classes, len(kept)
    spans = np.zeros((n, 4), dtype=np.uint64)
    stats = {name: np.empty((n, nb), dtype=np.int64 if name == "count" else np.float64)
             for name in STATS}
    counts = np.zeros((n, k1), dtype=np.int64)
    labels = np.zeros(n, dtype=np.int16)
    n_boxes = np.zeros(n, dtype=np.int64)
    boxes: list[np.ndarray] = []
    box_labels: list[np.ndarray] = []
    feats = None
    if job.task == "detection" and job.labels is not None:
        feats = SourceFeatures(shapes=np.empty(0, dtype=object), class_ids=job.labels.values,
                               pixel_boxes=job.labels.pixel_boxes)
    parts: list[bytes] = []
    pos = 0
    for j, t in enumerate(kept):
        r, c = int(b.rows[t]), int(b.cols[t])
        tile = np.ascontiguousarray(data[:, r:r + s, c:c + s], dtype=job.dtype)
        st = BandStats.of(tile, valid[r:r + s, c:c + s])
        for name in STATS:
            stats[name][j] = getattr(st, name)
        chunk = encode_chunk(job.image, tile)
        if chunk:
            spans[j, :2] = (pos, len(chunk))
            parts.append(chunk)
            pos += len(chunk)
        if burned is not None:
            m = burned[r:r + s, c:c + s]
            counts[j] = class_counts(m, k1)
            labels[j] = int(np.argmax(counts[j])) if counts[j].any() else 0
            if job.mask is not None:
                chunk = encode_chunk(job.mask, m)
                if chunk:
                    spans[j, 2:] = (pos, len(chunk))
                    parts.append(chunk)
                    pos += len(chunk)
        elif feats is not None:
            tw = PixelWindow(w.row + r, w.col + c, s, s)
            bx, lab = _tile_boxes(feats, tw, job.min_box_visible)
            n_boxes[j] = len(bx)
            if len(bx):
                boxes.append(bx)
                box_labels.append(lab)
                counts[j] = np.bincount(lab, minlength=k1)[:k1]
    spill, marker = block_paths(job.progress, job.index)
    spill.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(spill, parts)
    _save_marker(marker, {
        "tiles": b.tiles, "valid": fractions, "kept": keep, "spans": spans,
        **{f"stats_{k}": v for k, v in stats.items()},
        "class_counts": counts, "label": labels, "n_boxes": n_boxes,
        "boxes": np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32),
        "box_label": np.concatenate(box_labels) if box_labels else np.zeros(0, np.int16),
    })
    return len(b.tiles)


def _save_marker(path: Path, arrays: dict[str, Any]) -> None:
    """Save arrays as ``.npz`` under a temporary name, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


@dataclass(frozen=True)
class ShardsJob:
    """A range of final shards and, per final tile of it, where its chunks lie.

    Attributes:
        store: the in-progress store.
        progress: directory of the spill files.
        shards: first and last + 1 shard index.
        first: final index of the first tile of the range.
        block: spill file (block index) of each tile.
        spans: (offset, nbytes) of its image and mask chunks there.
        splits: split of each tile.
        stats: per tile statistics (``count``, ``mean``, ``m2``, ``min``, ``max``, per band).
        class_counts: per tile class counts (pixels; boxes for detection).
        labels: per tile class (classification).
        boxes: per tile, its boxes and their classes (detection).
        task: the dataset's task.
        image: layout of ``image``.
        mask: layout of ``mask`` (segmentation).
    """

    store: str
    progress: str
    shards: tuple[int, int]
    first: int
    block: np.ndarray
    spans: np.ndarray
    splits: np.ndarray
    stats: dict[str, np.ndarray]
    class_counts: np.ndarray
    labels: np.ndarray
    boxes: tuple[tuple[np.ndarray, np.ndarray], ...]
    task: str
    image: ShardLayout
    mask: ShardLayout | None


def run_shards(job: ShardsJob) -> int:
    """Assemble and write a range of shards from the spill files; leave a marker per shard.

    Returns:
        Tiles written.
    """
    fds: dict[int, int] = {}

    def chunk(t: int, col: int) -> FileRange | None:
        offset, nbytes = int(job.spans[t, col]), int(job.spans[t, col + 1])
        if nbytes == 0:
            return None
        blk = int(job.block[t])
        if blk not in fds:
            fds[blk] = os.open(block_paths(job.progress, blk)[0], os.O_RDONLY)
        return FileRange(fds[blk], offset, nbytes)

    per = job.image.per_shard
    k1 = job.class_counts.shape[1]
    written = 0
    try:
        for shard in range(*job.shards):
            lo = shard * per - job.first
            hi = min(lo + per, len(job.block))
            tiles = range(lo, hi)
            write_shard(job.image, shard, [chunk(t, 0) for t in tiles])
            if job.mask is not None:
                write_shard(job.mask, shard, [chunk(t, 2) for t in tiles])
            _shard_marker(job, shard, lo, hi, k1)
            written += hi - lo
    finally:
        for fd in fds.values():
            os.close(fd)
    return written


def _shard_marker(job: ShardsJob, shard: int, lo: int, hi: int, k1: int) -> None:
    """The marker of the classic shard pass for tiles ``lo..hi`` of ``job`` (in order)."""
    stats = BandStats.empty(job.stats["count"].shape[1])
    for t in range(lo, hi):
        if job.splits[t] == 0:
            stats = stats.merge(BandStats(*(job.stats[name][t] for name in STATS)))
    counts = job.class_counts[lo:hi]
    class_pixels = counts.sum(axis=0, dtype=np.int64)
    if job.task == "classification":
        class_tiles = np.bincount(job.labels[lo:hi], minlength=k1)[:k1].astype(np.int64)
    else:
        class_tiles = (counts > 0).sum(axis=0, dtype=np.int64)
    arrays: dict[str, Any] = {f"stats_{k}": v for k, v in stats.to_arrays().items()}
    tiles = range(lo, hi) if job.boxes else range(0)
    boxes = [job.boxes[t] for t in tiles]
    tile_of = [np.full(len(job.boxes[t][0]), job.first + t, dtype=np.int32) for t in tiles]
    _save_marker(marker_path(job.store, shard), {
        **arrays, "class_pixels": class_pixels, "class_tiles": class_tiles,
        "boxes": np.concatenate([bx for bx, _ in boxes]) if boxes else
        np.zeros((0, 4), np.float32),
        "box_label": np.concatenate([lb for _, lb in boxes]) if boxes else
        np.zeros(0, np.int16),
        "box_tile": np.concatenate(tile_of) if tile_of else np.zeros(0, np.int32),
    })
