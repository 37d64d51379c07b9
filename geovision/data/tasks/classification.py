"""Classification samples: the image and its tile's class id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import zarr
from torch.utils.data import default_collate

from geovision.data.info import TileInfo
from geovision.data.tasks import BatchedDataTask, TileSource, Turn

if TYPE_CHECKING:
    from geovision.data.transforms import Sample


class Classification(BatchedDataTask):
    """``label`` int64 per item (a scalar), ``(N,)`` per batch."""

    name = "classification"
    counted = "class_tiles"

    def preload(self, info: TileInfo) -> np.ndarray:
        """Every tile's class as a model index (small: read once)."""
        group: Any = zarr.open_group(str(info.path), mode="r")
        labels = np.asarray(group["label"][...], dtype=np.int64)
        lut = info.id_lookup
        return labels if lut is None else lut[labels].astype(np.int64)

    def sample(self, ds: TileSource, tile: int) -> dict[str, torch.Tensor]:
        """Nothing beside the image: the label does not move with augmentations."""
        return {}

    def item(self, ds: TileSource, sample: Sample, tile: int) -> dict[str, Any]:
        """The tile's class id."""
        return {"label": torch.tensor(int(ds.targets[tile]), dtype=torch.int64)}

    def batch(self, ds: TileSource, tiles: list[int], turns: list[Turn]) -> dict[str, Any]:
        """The tiles' class ids."""
        return {"label": torch.tensor([int(ds.targets[t]) for t in tiles], dtype=torch.int64)}

    def collate_targets(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Class ids stacked."""
        return {"label": default_collate([it["label"] for it in items])}

    def class_presence(self, ds: TileSource) -> np.ndarray:
        """Each tile's class, one-hot."""
        labels = np.asarray(ds.targets)[np.asarray(ds.indices, dtype=np.int64)]
        return np.eye(ds.info.num_classes, dtype=bool)[labels]

    def count_split(self, ds: TileSource) -> np.ndarray:
        """Tiles per class."""
        labels = np.asarray(ds.targets)[np.asarray(ds.indices, dtype=np.int64)]
        return np.bincount(labels, minlength=ds.info.num_classes).astype(np.float64)


TASK = Classification()
