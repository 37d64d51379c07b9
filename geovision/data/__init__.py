"""Torch data over the Zarr tile store: dataset, augmentations, samplers, collate."""

from __future__ import annotations

from geovision.data.chunks import ChunkReader, chunk_reader
from geovision.data.dataset import Normalize, TileDataset, TileInfo, read_info
from geovision.data.sampling import EpochSampler
from geovision.data.transforms import Augment, Sample, hflip, rot90, vflip

__all__ = [
    "Augment",
    "ChunkReader",
    "EpochSampler",
    "Normalize",
    "Sample",
    "TileDataset",
    "TileInfo",
    "chunk_reader",
    "hflip",
    "read_info",
    "rot90",
    "vflip",
]
