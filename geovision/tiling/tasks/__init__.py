"""What tiling does differently per task: one :class:`TilingTask` per task.

A block of tiles is read, labelled and encoded by :func:`geovision.tiling.encode.encode_block`;
whether a task's tiles are labelled from burned masks (a mask per tile, or the class covering
most of the tile) or from the features' bounds (boxes), which arrays of the store hold the
labels and what the class counts of ``geovision info`` count is the task's, in ``<task>.py``
beside this module, found through :data:`geovision.tasks.TASKS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, cast

from geovision.tasks import get_task


class TilingTask(ABC):
    """What tiling does differently for a task.

    Attributes:
        name: the task.
        burns: labels are burned on the tile's pixels (else boxes are taken from bounds).
        counted: what ``counts.class_<counted>`` of the store counts per class.
        stores_mask: the tiles' masks are stored (``mask`` array).
        stores_label: one class per tile is stored (``label`` array), the class covering most
            of its valid pixels; ``counts.class_tiles`` then counts tiles by that class.
    """

    name: str
    burns: bool = True
    counted: str = "pixels"
    stores_mask: bool = False
    stores_label: bool = False

    @abstractmethod
    def create_arrays(self, group: Any, *, n_tiles: int, tile_size: int, shard: int) -> None:
        """Create the store's arrays that hold the tiles' labels (none for boxes)."""


def for_task(name: str) -> TilingTask:
    """The tiling object of task ``name``.

    Raises:
        InputError: no such task.
    """
    return cast(TilingTask, get_task(name).stage("tiling"))
