"""Segmentation samples: the image and its mask, moved together by augmentations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import default_collate

from geovision.data.tasks import DataTask, TileSource, Turn

if TYPE_CHECKING:
    from geovision.data.transforms import Sample


class Segmentation(DataTask):
    """``mask`` uint8 ``(H, W)`` per item, ``(N, H, W)`` per batch."""

    name = "segmentation"
    tile_arrays = ("mask",)

    def sample(self, ds: TileSource, tile: int) -> dict[str, torch.Tensor]:
        """The tile's mask."""
        return {"mask": torch.from_numpy(ds.tile_array("mask", tile))}

    def item(self, ds: TileSource, sample: Sample, tile: int) -> dict[str, Any]:
        """The (augmented) mask."""
        assert sample.mask is not None
        return {"mask": sample.mask.contiguous()}

    def batch(self, ds: TileSource, tiles: list[int], turns: list[Turn]) -> dict[str, Any]:
        """The masks, decoded straight into the batch."""
        return {"mask": ds.read_batch("mask", tiles, turns)}

    def collate_targets(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Masks stacked."""
        return {"mask": default_collate([it["mask"] for it in items])}

    def class_counts(self, ds: TileSource) -> np.ndarray:
        """Labelled pixels per class."""
        info = ds.info
        counts = np.zeros(info.num_classes)
        for t in ds.indices:
            m = ds.tile_array("mask", int(t))
            counts += np.bincount(m[m != info.ignore_index],
                                  minlength=info.num_classes)[: info.num_classes]
        return counts


TASK = Segmentation()
