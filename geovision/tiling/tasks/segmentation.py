"""Segmentation tiles: a mask of class ids per tile."""

from __future__ import annotations

from typing import Any

import numpy as np

from geovision.formats import IGNORE_INDEX
from geovision.geo.windows import PixelWindow
from geovision.options.tile import TileOptions
from geovision.tiling.tasks import ShardLabels, TilingTask


class _Masks(ShardLabels):
    def __init__(self, n_tiles: int, tile_size: int, num_classes: int) -> None:
        super().__init__(n_tiles, tile_size, num_classes)
        self.mask = np.empty((n_tiles, tile_size, tile_size), dtype=np.uint8)

    def add(self, i: int, tile: int, burned: np.ndarray | None, features: Any,
            window: PixelWindow) -> None:
        assert burned is not None
        self.mask[i] = burned
        counts = np.bincount(burned.ravel(), minlength=256)[:self.num_classes]
        self.class_pixels += counts
        self.class_tiles += counts > 0

    def write(self, group: Any, start: int, stop: int) -> None:
        group["mask"][start:stop] = self.mask


class Segmentation(TilingTask):
    """A class id per pixel, burned on the source's own grid."""

    name = "segmentation"

    def create_arrays(self, group: Any, *, n_tiles: int, tile_size: int, shard: int) -> None:
        """``mask (tile, y, x)`` uint8, one tile per chunk, ``shard`` tiles per shard."""
        n = max(n_tiles, 1)
        group.create_array(
            "mask", shape=(n_tiles, tile_size, tile_size), dtype="uint8",
            chunks=(1, tile_size, tile_size), shards=(min(shard, n), tile_size, tile_size),
            fill_value=IGNORE_INDEX, dimension_names=("tile", "y", "x"),
        )

    def shard_labels(self, n_tiles: int, tile_size: int, num_classes: int,
                     options: TileOptions) -> ShardLabels:
        """Masks and per-class pixel and tile counts."""
        return _Masks(n_tiles, tile_size, num_classes)


TASK = Segmentation()
