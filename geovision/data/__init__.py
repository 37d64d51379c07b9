"""Torch data over the Zarr tile store: dataset, augmentations, samplers, collate."""

from __future__ import annotations

from geovision.data.dataset import SPLITS, TileDataset, TileInfo, collate, read_info
from geovision.data.sampling import EpochSampler
from geovision.data.transforms import Augment, Sample, hflip, rot90, vflip

__all__ = [
    "SPLITS",
    "Augment",
    "EpochSampler",
    "Sample",
    "TileDataset",
    "TileInfo",
    "collate",
    "hflip",
    "read_info",
    "rot90",
    "vflip",
]
