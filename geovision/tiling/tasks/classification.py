"""Classification tiles: one class per tile, the class covering most of its valid pixels."""

from __future__ import annotations

from typing import Any

from geovision.tiling.tasks import TilingTask


class Classification(TilingTask):
    """The class covering the largest area of the tile (its burned pixels)."""

    name = "classification"
    stores_label = True

    def create_arrays(self, group: Any, *, n_tiles: int, tile_size: int, shard: int) -> None:
        """``label (tile,)`` int16."""
        group.create_array("label", shape=(n_tiles,), dtype="int16",
                           chunks=(min(shard, max(n_tiles, 1)),), fill_value=0,
                           dimension_names=("tile",))


TASK = Classification()
