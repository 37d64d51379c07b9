"""How the tiles of each task are labelled: one :class:`TilingTask` per task.

A shard of tiles is read and labelled by :func:`geovision.tiling.work.build_shard`; what a
tile's label is (a mask, one class, boxes), which arrays of the store hold it and how the
class counts of ``geovision info`` are made is the task's, in ``<task>.py`` beside this
module, found through :data:`geovision.tasks.TASKS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, cast

import numpy as np

from geovision.geo.windows import PixelWindow
from geovision.options.tile import TileOptions
from geovision.tasks import get_task


class ShardLabels(ABC):
    """The labels of one shard's tiles as they are made, and the class counts they add up to.

    Attributes:
        class_pixels: pixels (or boxes) per class id over the shard.
        class_tiles: tiles holding each class.
    """

    def __init__(self, n_tiles: int, tile_size: int, num_classes: int) -> None:
        """Start the labels of ``n_tiles`` tiles of ``tile_size`` pixels."""
        self.num_classes = num_classes
        self.class_pixels = np.zeros(num_classes, dtype=np.int64)
        self.class_tiles = np.zeros(num_classes, dtype=np.int64)

    @abstractmethod
    def add(self, i: int, tile: int, burned: np.ndarray | None, features: Any,
            window: PixelWindow) -> None:
        """Label tile ``i`` of the shard (``tile`` in the store).

        Args:
            i: the tile's position in the shard.
            tile: its index in the store.
            burned: class ids burned on the tile's pixels, ``ignore_index`` where nodata
                (tasks that burn), else None.
            features: the label features of the tile's source that touch the shard
                (:class:`~geovision.tiling.work.SourceFeatures`), or None.
            window: the tile's window in its source.
        """

    def write(self, group: Any, start: int, stop: int) -> None:  # noqa: B027 - optional
        """Write the shard's labels into the store's arrays (tiles ``start:stop``)."""

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (or boxes) per class and tiles per class, over the shard."""
        return self.class_pixels, self.class_tiles

    def boxes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The shard's boxes (xyxy in tile pixels), their class ids and tile indices."""
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int16), np.zeros(0, np.int32)


class TilingTask(ABC):
    """What tiling does differently for a task.

    Attributes:
        name: the task.
        burns: labels are burned on the tile's pixels (else boxes are taken from bounds).
        counted: what ``counts.class_<counted>`` of the store counts per class.
    """

    name: str
    burns: bool = True
    counted: str = "pixels"

    @abstractmethod
    def create_arrays(self, group: Any, *, n_tiles: int, tile_size: int, shard: int) -> None:
        """Create the store's arrays that hold the tiles' labels (none for boxes)."""

    @abstractmethod
    def shard_labels(self, n_tiles: int, tile_size: int, num_classes: int,
                     options: TileOptions) -> ShardLabels:
        """A new :class:`ShardLabels` for a shard of ``n_tiles`` tiles."""

    def box_arrays(self, boxes: list[np.ndarray], labels: list[np.ndarray],
                   tiles: list[np.ndarray]) -> dict[str, np.ndarray] | None:
        """The store's box arrays from every shard's boxes (None: the task has none)."""
        return None


def for_task(name: str) -> TilingTask:
    """The tiling object of task ``name``.

    Raises:
        InputError: no such task.
    """
    return cast(TilingTask, get_task(name).stage("tiling"))
