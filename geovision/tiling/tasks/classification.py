"""Classification tiles: one class per tile, the class covering most of its valid pixels."""

from __future__ import annotations

from typing import Any

import numpy as np

from geovision.geo.windows import PixelWindow
from geovision.options.tile import TileOptions
from geovision.tiling.tasks import ShardLabels, TilingTask


class _Labels(ShardLabels):
    def __init__(self, n_tiles: int, tile_size: int, num_classes: int) -> None:
        super().__init__(n_tiles, tile_size, num_classes)
        self.labels = np.zeros(n_tiles, dtype=np.int16)

    def add(self, i: int, tile: int, burned: np.ndarray | None, features: Any,
            window: PixelWindow) -> None:
        assert burned is not None
        counts = np.bincount(burned.ravel(), minlength=256)[:self.num_classes]
        self.class_pixels += counts
        self.labels[i] = int(np.argmax(counts)) if counts.any() else 0

    def write(self, group: Any, start: int, stop: int) -> None:
        group["label"][start:stop] = self.labels

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        # tiles per class: by each tile's label
        tiles = np.bincount(self.labels, minlength=self.num_classes)[:self.num_classes]
        return self.class_pixels, tiles.astype(np.int64)


class Classification(TilingTask):
    """The class covering the largest area of the tile (its burned pixels)."""

    name = "classification"

    def create_arrays(self, group: Any, *, n_tiles: int, tile_size: int, shard: int) -> None:
        """``label (tile,)`` int16."""
        group.create_array("label", shape=(n_tiles,), dtype="int16",
                           chunks=(min(shard, max(n_tiles, 1)),), fill_value=0,
                           dimension_names=("tile",))

    def shard_labels(self, n_tiles: int, tile_size: int, num_classes: int,
                     options: TileOptions) -> ShardLabels:
        """Tile labels, pixels per class and tiles per label."""
        return _Labels(n_tiles, tile_size, num_classes)


TASK = Classification()
