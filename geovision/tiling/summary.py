"""The root attributes and box arrays of a tile store, from the figures of its tiles in memory.

The classic path (``tiling/api.py: _summarize``) reads one marker per shard; here the same
numbers come from :class:`~geovision.tiling.encode.TileFigures` of the final tiles, folded in
the same order so that every float is bit-identical:

* statistics: per shard ``S_k = ((empty + t_1) + t_2) + ...`` over its train tiles in order,
  then ``((empty + S_0) + S_1) + ...`` over shards (``+`` is :meth:`BandStats.merge`);
* class pixels: sum of the tiles' class counts; class tiles: tiles holding each class
  (classification: tiles labelled with it);
* boxes: every tile's boxes in tile order, ``box_tile`` their tile's final index.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from geovision.geo.raster import RasterInfo
from geovision.geo.scenes import SceneSource
from geovision.geo.vector import Labels
from geovision.tiling.encode import TileFigures
from geovision.tiling.stats import BandStats

log = logging.getLogger(__name__)


def merged_stats(figures: TileFigures, splits: np.ndarray, per_shard: int) -> BandStats:
    """Statistics of the train tiles, folded shard by shard as the classic path does."""
    bands = figures.count.shape[1]
    total = BandStats.empty(bands)
    train = np.flatnonzero(splits == 0)
    for start in range(0, len(splits), per_shard):
        lo, hi = np.searchsorted(train, [start, start + per_shard])
        shard = BandStats.empty(bands)
        for i in train[lo:hi]:
            shard = shard.merge(figures.stats(int(i)))
        total = total.merge(shard)
    return total


def summarize(
    figures: TileFigures, splits: np.ndarray, *, per_shard: int, scenes: list[SceneSource],
    sources: list[RasterInfo], bands: list[int], band_names: list[str], lab: Labels, opts: Any,
    border_dropped: int, ignore_index: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Root attributes and (detection) box arrays, equal to those of ``tile()``.

    Args:
        figures: figures of the final tiles, in order.
        splits: their splits.
        per_shard: tiles per shard of the classic pass (``--shard``).
        scenes: the scenes as resolved.
        sources: their rasters.
        bands: the bands kept (1-based).
        band_names: their names.
        lab: the labels read.
        opts: the :class:`~geovision.tiling.api.TileOptions`.
        border_dropped: tiles left out on split-block borders.
        ignore_index: mask value of nodata.
    """
    stats = merged_stats(figures, splits, per_shard)
    if stats.count.max(initial=0) == 0:
        log.warning("no train tile has valid pixels; stats are empty")
    k1 = len(lab.classes)
    pixels = figures.class_counts.sum(axis=0, dtype=np.int64)
    if opts.task == "classification":
        class_tiles = np.bincount(figures.label, minlength=k1)[:k1].astype(np.int64)
    else:
        class_tiles = (figures.class_counts > 0).sum(axis=0, dtype=np.int64)
    attrs: dict[str, Any] = {
        "task": opts.task,
        "classes": lab.classes,
        "ignore_index": ignore_index,
        "bands": [{"index": b, "name": n, "dtype": sources[0].dtype}
                  for b, n in zip(bands, band_names, strict=True)],
        "tile_size": opts.tile_size,
        "stride": opts.step,
        "sources": [{**s.describe(), **sc.describe()}
                    for sc, s in zip(scenes, sources, strict=True)],
        "labels": lab.describe(),
        "stats": stats.describe(),
        "split": {
            "method": opts.split,
            "block_size": opts.split_block_size if opts.split == "block" else None,
            "fractions": list(opts.fractions), "seed": opts.seed,
            "border_dropped": border_dropped,
        },
        "counts": {
            "tiles": {name: int((splits == i).sum()) for i, name in
                      enumerate(("train", "val", "test"))},
            "class_tiles": class_tiles.tolist(),
            ("class_boxes" if opts.task == "detection" else "class_pixels"): pixels.tolist(),
        },
        "options": {"min_valid": opts.min_valid, "min_box_visible": opts.min_box_visible},
    }
    boxes: dict[str, np.ndarray] | None = None
    if opts.task == "detection":
        boxes = {
            "boxes": figures.boxes.astype(np.float32).reshape(-1, 4),
            "box_label": figures.box_label.astype(np.int16),
            "box_tile": np.repeat(np.arange(len(figures), dtype=np.int32), figures.n_boxes),
        }
    return attrs, boxes
