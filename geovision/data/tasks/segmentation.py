"""Segmentation samples: the image and its mask, moved together by augmentations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import zarr
from torch.utils.data import default_collate

from geovision.data.tasks import BatchedDataTask, TileSource, Turn

if TYPE_CHECKING:
    from geovision.data.transforms import Sample


def _indices(ds: TileSource, mask: np.ndarray) -> np.ndarray:
    """A stored mask's class ids as model indices (ignore stays ignore; dense ids as read)."""
    lut = ds.info.id_lookup
    return mask if lut is None else lut[mask]


class Segmentation(BatchedDataTask):
    """``mask`` uint8 ``(H, W)`` per item, ``(N, H, W)`` per batch."""

    name = "segmentation"
    tile_arrays = ("mask",)
    counted = "class_pixels"

    def sample(self, ds: TileSource, tile: int) -> dict[str, torch.Tensor]:
        """The tile's mask."""
        return {"mask": torch.from_numpy(_indices(ds, ds.tile_array("mask", tile)))}

    def item(self, ds: TileSource, sample: Sample, tile: int) -> dict[str, Any]:
        """The (augmented) mask."""
        assert sample.mask is not None
        return {"mask": sample.mask.contiguous()}

    def batch(self, ds: TileSource, tiles: list[int], turns: list[Turn]) -> dict[str, Any]:
        """The masks, decoded straight into the batch."""
        masks = ds.read_batch("mask", tiles, turns)
        lut = ds.info.id_lookup
        if lut is not None:  # in place: the batch may live in shared memory
            view = masks.numpy()
            view[...] = lut[view]
        return {"mask": masks}

    def collate_targets(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Masks stacked."""
        return {"mask": default_collate([it["mask"] for it in items])}

    def class_presence(self, ds: TileSource) -> np.ndarray:
        """Classes with at least one pixel in each tile (masks read in blocks of 256 tiles)."""
        k = ds.info.num_classes
        masks: Any = zarr.open_group(str(ds.info.path), mode="r")["mask"]
        tiles = np.asarray(ds.indices, dtype=np.int64)
        out = np.zeros((len(tiles), k), dtype=bool)
        for start in range(0, len(tiles), 256):
            part = tiles[start:start + 256]
            block = np.asarray(masks.get_orthogonal_selection(part.tolist()))
            flat = block.reshape(len(part), -1).astype(np.int64)
            for c in range(k):
                out[start:start + len(part), c] = (flat == c).any(axis=1)
        return out

    def count_split(self, ds: TileSource) -> np.ndarray:
        """Labelled pixels per class."""
        info = ds.info
        counts = np.zeros(info.num_classes)
        for t in ds.indices:
            m = _indices(ds, ds.tile_array("mask", int(t)))
            counts += np.bincount(m[m != info.ignore_index],
                                  minlength=info.num_classes)[: info.num_classes]
        return counts


TASK = Segmentation()
