"""The root attributes and box arrays of a tile store, from the figures of its tiles in memory.

The numbers come from :class:`~geovision.tiling.encode.TileFigures` of the final tiles, folded
in a fixed order (shard by shard) so that a run gives the same bits whichever pass made it:

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

from geovision.formats import SPLITS
from geovision.geo.raster import RasterInfo
from geovision.geo.scenes import SceneSource
from geovision.tiling.encode import TileFigures
from geovision.tiling.labels import PlacedLabels
from geovision.tiling.stats import BandStats, merged_moments
from geovision.tiling.tasks import for_task

log = logging.getLogger(__name__)


def merged_stats(figures: TileFigures, splits: np.ndarray, per_shard: int) -> BandStats:
    """Statistics of the train tiles, folded shard by shard (see the module docstring).

    The fold is :meth:`BandStats.merge`'s arithmetic on Python floats, band by band, in the
    same order (the same bits as merging arrays tile by tile, without the cost of a numpy
    call per tile); minimum, maximum and count do not depend on the order and are reduced
    at once.
    """
    bands = figures.count.shape[1]
    train = np.flatnonzero(splits == 0)
    total = BandStats.empty(bands)
    if not len(train):
        return total
    counts = figures.count[train]
    total.count = counts.sum(axis=0).astype(np.int64)
    total.min = np.minimum(total.min, figures.min[train].min(axis=0))
    total.max = np.maximum(total.max, figures.max[train].max(axis=0))
    cuts = np.searchsorted(train, np.arange(0, len(splits), per_shard)).tolist()[1:]
    means, m2s = figures.mean[train].T.tolist(), figures.m2[train].T.tolist()
    for b, (count_b, mean_b, m2_b) in enumerate(zip(counts.T.tolist(), means, m2s,
                                                    strict=True)):
        n_all, mean_all, m2_all = 0, 0.0, 0.0
        for lo, hi in zip([0, *cuts], [*cuts, len(train)], strict=True):
            n_s, mean_s, m2_s = 0, 0.0, 0.0
            for i in range(lo, hi):
                n_s, mean_s, m2_s = _merge(n_s, mean_s, m2_s, count_b[i], mean_b[i], m2_b[i])
            n_all, mean_all, m2_all = _merge(n_all, mean_all, m2_all, n_s, mean_s, m2_s)
        total.mean[b], total.m2[b] = mean_all, m2_all
    return total


def _merge(n1: int, mean1: float, m21: float, n2: int, mean2: float, m22: float
           ) -> tuple[int, float, float]:
    """:meth:`BandStats.merge` of one band (count, mean, M2) on Python numbers."""
    n = n1 + n2
    if n <= 0:
        return n, 0.0, 0.0
    return n, *merged_moments(n1, mean1, m21, n2, mean2, m22, n)


def summarize(
    figures: TileFigures, splits: np.ndarray, *, per_shard: int, scenes: list[SceneSource],
    sources: list[RasterInfo], bands: list[int], band_names: list[str], labels: PlacedLabels,
    opts: Any,
    border_dropped: int, ignore_index: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Root attributes and (detection) box arrays of the store.

    Args:
        figures: figures of the final tiles, in order.
        splits: their splits.
        per_shard: tiles per shard (``--shard``).
        scenes: the scenes as resolved.
        sources: their rasters.
        bands: the bands kept (1-based).
        band_names: their names.
        labels: the labels read (their classes, the record of how they were read).
        opts: the :class:`~geovision.tiling.api.TileOptions`.
        border_dropped: tiles left out on split-block borders.
        ignore_index: mask value of nodata.
    """
    stats = merged_stats(figures, splits, per_shard)
    if stats.count.max(initial=0) == 0:
        log.warning("no train tile has valid pixels; stats are empty")
    labelling = for_task(opts.task)
    pixels = figures.class_counts.sum(axis=0, dtype=np.int64)
    table = labels.final_table(pixels)
    k1 = table.num_outputs  # counts are listed by class id (ids may have gaps)
    pixels = np.pad(pixels, (0, max(0, k1 - len(pixels))))[:k1]
    if labelling.stores_label:
        class_tiles = np.bincount(figures.label, minlength=k1)[:k1].astype(np.int64)
    else:
        class_tiles = (figures.class_counts[:, :k1] > 0).sum(axis=0, dtype=np.int64)
        class_tiles = np.pad(class_tiles, (0, max(0, k1 - len(class_tiles))))
    record = dict(labels.record)
    if labels.vector is None:
        dropped = int(figures.dropped.sum())
        record["dropped"] = {"unlisted_value_pixels": dropped} if dropped else {}
    attrs: dict[str, Any] = {
        "task": opts.task,
        "classes": table.records(),
        "ignore_index": ignore_index,
        "bands": [{"index": b, "name": n, "dtype": sources[0].dtype}
                  for b, n in zip(bands, band_names, strict=True)],
        "tile_size": opts.tile_size,
        "stride": opts.step,
        "sources": [{**s.describe(), **sc.describe()}
                    for sc, s in zip(scenes, sources, strict=True)],
        "labels": record,
        "stats": stats.describe(),
        "split": {
            "method": opts.split,
            "block_size": opts.split_block_size if opts.split == "block" else None,
            "fractions": list(opts.fractions), "seed": opts.seed,
            "border_dropped": border_dropped,
        },
        "counts": {
            "tiles": {name: int((splits == i).sum()) for i, name in
                      enumerate(SPLITS)},
            "class_tiles": class_tiles.tolist(),
            f"class_{labelling.counted}": pixels.tolist(),
        },
        "options": {"min_valid": opts.min_valid, "min_box_visible": opts.min_box_visible},
    }
    boxes: dict[str, np.ndarray] | None = None
    if not labelling.burns:
        boxes = {
            "boxes": figures.boxes.astype(np.float32).reshape(-1, 4),
            "box_label": figures.box_label.astype(np.int16),
            "box_tile": np.repeat(np.arange(len(figures), dtype=np.int32), figures.n_boxes),
        }
    return attrs, boxes
