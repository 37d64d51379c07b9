"""What a sample of each task holds: one :class:`DataTask` per task.

:class:`~geovision.data.dataset.TileDataset` reads a tile's image and leaves its target (a
mask, a label, boxes) to the task's object, in ``<task>.py`` beside this module, found through
:data:`geovision.tasks.TASKS`: what is read once per store, what a sample and an item hold,
how a batch is read whole and how items are collated.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch
from torch.utils.data import default_collate

from geovision.data.info import TileInfo
from geovision.tasks import get_task

if TYPE_CHECKING:
    from geovision.data.transforms import Sample

#: A tile's flips and quarter turns, as :meth:`~geovision.data.transforms.Augment.draw` gives.
Turn = tuple[bool, bool, int] | None


class TileSource(Protocol):
    """What a task reads of a :class:`geovision.data.dataset.TileDataset`."""

    info: TileInfo
    indices: np.ndarray
    targets: Any
    task: DataTask

    def tile_array(self, name: str, tile: int) -> np.ndarray:
        """Tile ``tile`` of the per-tile array ``name``, in its stored dtype."""

    def read_batch(self, name: str, tiles: list[int], turns: list[Turn]) -> torch.Tensor:
        """Tiles of array ``name`` stacked, each flipped and rotated as ``turns`` says."""


class DataTask(ABC):
    """What the data stage does differently for a task.

    Attributes:
        name: the task.
        tile_arrays: per-tile arrays read beside ``image`` (one chunk per tile).
    Items are read and collated one by one; a task whose batches can be decoded whole is a
    :class:`BatchedDataTask`.
    """

    name: str
    tile_arrays: tuple[str, ...] = ()
    #: The key of the store's ``counts`` attribute that :meth:`class_counts` reads.
    counted: str = ""

    def preload(self, info: TileInfo) -> Any:
        """What is read once per store (small per-tile targets), or None.

        Class ids come back as model indices (:attr:`TileInfo.id_lookup`).
        """
        return None

    @abstractmethod
    def sample(self, ds: TileSource, tile: int) -> dict[str, torch.Tensor]:
        """The target fields of tile ``tile``'s :class:`~geovision.data.transforms.Sample`."""

    @abstractmethod
    def item(self, ds: TileSource, sample: Sample, tile: int) -> dict[str, Any]:
        """The target fields of an item, from its (augmented) sample."""

    @abstractmethod
    def collate_targets(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The target fields of a batch, from its items."""

    def collate(self, items: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
        """Stack images (and targets); a batch already read whole passes through.

        Stacks with :func:`torch.utils.data.default_collate`, which in a DataLoader worker
        writes the batch straight into shared memory (no further copy to pass it on).
        """
        if isinstance(items, dict):
            return items
        return {"image": default_collate([it["image"] for it in items]),
                "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
                **self.collate_targets(items)}

    def class_counts(self, ds: TileSource) -> np.ndarray:
        """How often each class occurs (for ``class_weights: auto``), float64 per class id.

        The tile store's own counts (``counts.<counted>`` of its attributes, written by
        tiling over every split), so nothing is read again; a store without them is counted
        over the dataset's split by :meth:`count_split`.

        Raises:
            InputError: the task has no class counts of that kind.
        """
        stored = ds.info.counts.get(self.counted) if self.counted else None
        k = ds.info.num_classes
        if isinstance(stored, list) and len(stored) == k:
            return np.asarray(stored, dtype=np.float64)
        return self.count_split(ds)

    def count_split(self, ds: TileSource) -> np.ndarray:
        """Class counts over the dataset's split, read from its tiles.

        Raises:
            InputError: the task has no class counts of that kind.
        """
        from geovision.errors import InputError

        raise InputError(f"{ds.info.path}: {self.name} has no per-class weights")

    @abstractmethod
    def class_presence(self, ds: TileSource) -> np.ndarray:
        """Which classes each tile of the split holds: bool ``(len(ds), classes)``.

        For the ``balanced`` sampler; tiles in the dataset's order.
        """


class BatchedDataTask(DataTask):
    """A task whose batches are decoded whole, straight into their arrays.

    :meth:`geovision.data.dataset.TileDataset.__getitems__` reads the images and
    :meth:`batch` the targets of a batch at once, instead of item by item.
    """

    @abstractmethod
    def batch(self, ds: TileSource, tiles: list[int], turns: list[Turn]) -> dict[str, Any]:
        """The target fields of a batch read whole."""


def for_task(name: str) -> DataTask:
    """The data object of task ``name``.

    Raises:
        InputError: no such task.
    """
    return cast(DataTask, get_task(name).stage("data"))
