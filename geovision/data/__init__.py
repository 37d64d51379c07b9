"""Torch data over the Zarr tile store: dataset, augmentations, samplers, collate."""

from __future__ import annotations

from geovision.data.chunks import ChunkReader, chunk_reader
from geovision.data.dataset import Normalize, TileDataset, TileInfo, read_info
from geovision.data.sampling import BalancedSampler, EpochSampler, balanced_weights
from geovision.data.transforms import Augment, Sample, hflip, rot90, vflip

__all__ = [
    "Augment",
    "BalancedSampler",
    "ChunkReader",
    "EpochSampler",
    "Normalize",
    "Sample",
    "TileDataset",
    "TileInfo",
    "balanced_weights",
    "chunk_reader",
    "hflip",
    "read_info",
    "rot90",
    "vflip",
]
