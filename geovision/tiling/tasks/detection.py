"""Detection tiles: the boxes of the objects a tile holds."""

from __future__ import annotations

from typing import Any

import numpy as np

from geovision.geo.windows import PixelWindow
from geovision.tiling.tasks import TilingTask


def tile_boxes(pixel_boxes: np.ndarray, class_ids: np.ndarray, w: PixelWindow,
               min_visible: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of the features seen in a tile, in tile pixels, clipped to the tile.

    A box is kept when at least ``min_visible`` of its area lies inside the tile and it is at
    least one pixel wide and high there.

    Args:
        pixel_boxes: the features' bounds in source pixels (col_min, row_min, col_max,
            row_max).
        class_ids: their class ids.
        w: the tile's window in the source.
        min_visible: share of a box's area that must lie in the tile.
    """
    if len(pixel_boxes) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int16)
    shifted = pixel_boxes - np.array([w.col, w.row, w.col, w.row], dtype=np.float64)
    clipped = shifted.copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], 0, w.width)
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], 0, w.height)
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    full = np.maximum((shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1]), 1e-12)
    keep = (cw >= 1) & (ch >= 1) & (cw * ch / full >= min_visible)
    return clipped[keep].astype(np.float32), class_ids[keep].astype(np.int16)


class Detection(TilingTask):
    """Boxes from the bounds of the label features, kept where enough of them is visible."""

    name = "detection"
    burns = False
    counted = "boxes"

    def create_arrays(self, group: Any, *, n_tiles: int, tile_size: int, shard: int) -> None:
        """None: boxes are written when the store is complete (``store.commit_store``)."""


TASK = Detection()
