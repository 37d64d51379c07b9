"""Segmentation tiles: a mask of class ids per tile."""

from __future__ import annotations

from typing import Any

from geovision.formats import IGNORE_INDEX
from geovision.tiling.tasks import TilingTask


class Segmentation(TilingTask):
    """A class id per pixel, burned on the source's own grid."""

    name = "segmentation"
    stores_mask = True

    def create_arrays(self, group: Any, *, n_tiles: int, tile_size: int, shard: int) -> None:
        """``mask (tile, y, x)`` uint8, one tile per chunk, ``shard`` tiles per shard."""
        n = max(n_tiles, 1)
        group.create_array(
            "mask", shape=(n_tiles, tile_size, tile_size), dtype="uint8",
            chunks=(1, tile_size, tile_size), shards=(min(shard, n), tile_size, tile_size),
            fill_value=IGNORE_INDEX, dimension_names=("tile", "y", "x"),
        )


TASK = Segmentation()
