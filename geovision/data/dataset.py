"""A torch Dataset over a geovision Zarr tile store: one tile per item, read on demand."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numcodecs.blosc
import numpy as np
import torch
import zarr
from torch.utils.data import Dataset

from geovision.data.chunks import ChunkReader, chunk_reader
from geovision.data.info import TileInfo, read_info
from geovision.data.tasks import BatchedDataTask, for_task
from geovision.data.transforms import Augment, Sample, orient
from geovision.errors import InputError
from geovision.formats import SPLITS


@dataclass(frozen=True)
class Normalize:
    """``(x - mean) / std`` per band in float32, as model bundles apply it at inference.

    Rasters of a float dtype can hold NaN or infinite (nodata) pixels: they become 0, the band
    mean. Works on one image ``(C, H, W)`` or a batch ``(N, C, H, W)`` of any dtype, on any
    device; the input is left unchanged.

    Attributes:
        mean: per-band mean.
        std: per-band standard deviation (zeros are replaced by 1).
        float_source: the store's pixels are floating point.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    float_source: bool = False

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """The normalized float32 copy of ``image``."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=image.device)
        std = torch.tensor([v if v > 0 else 1.0 for v in self.std], dtype=torch.float32,
                           device=image.device)
        x = image.to(torch.float32)
        x = x.sub_(mean[:, None, None]) if x is not image else x.sub(mean[:, None, None])
        x = x.div_(std[:, None, None])
        if self.float_source:  # only float rasters can hold NaN (nodata) pixels
            x = torch.nan_to_num_(x, nan=0.0, posinf=0.0, neginf=0.0)
        return x


class TileDataset(Dataset[dict[str, Any]]):
    """Tiles of one split of a Zarr tile store, normalized, optionally augmented.

    Each item reads exactly one tile, with :class:`~geovision.data.chunks.ChunkReader`
    (zarr itself for store layouts that reader does not know); no file stays open, so
    DataLoader workers share nothing after fork. Boxes of a detection store are small and
    read once.

    Items are dicts: ``image`` ``(C, H, W)``, float32 normalized with the store's statistics
    or, with ``defer_normalization``, in the store's dtype; ``index`` (tile index in the
    store); plus the target fields of the task (:mod:`geovision.data.tasks`: ``mask``,
    ``label``, or ``boxes`` and ``labels``). :meth:`collate` makes batches of items;
    :meth:`geovision.engine.tasks.EngineTask.to_device` finishes a batch on the device.

    Args:
        path: the tile store.
        split: ``train``, ``val``, ``test`` or None for every tile.
        augment: augmentations (None: none, e.g. for validation).
        seed: seed of the augmentation draws; with :meth:`set_epoch` an item's augmentation
            depends only on (seed, epoch, tile), whatever the worker count.
        info: the store's :class:`TileInfo` if already read.
        normalization: ``{mean, std}`` per band to use instead of the store's statistics
            (a model bundle's, when evaluating a model).
        defer_normalization: leave images in the store's dtype (a quarter of the bytes of
            float32 for uint8 imagery to pass between processes and to the device); batches
            then need :attr:`batch_normalize`. Ignored when ``augment`` has torchvision v2
            transforms, which expect normalized images.
    """

    def __init__(self, path: str | os.PathLike[str], split: str | None = "train", *,
                 augment: Augment | None = None, seed: int = 0,
                 info: TileInfo | None = None,
                 normalization: dict[str, list[float]] | None = None,
                 defer_normalization: bool = False) -> None:
        self.info = info or read_info(path)
        if split is not None and split not in SPLITS:
            raise InputError(f"split '{split}' is not one of {', '.join(SPLITS)}")
        self.split = split
        self.indices = (self.info.splits[split] if split is not None
                        else np.arange(sum(len(v) for v in self.info.splits.values())))
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        norm = normalization or {"mean": self.info.mean, "std": self.info.std}
        if len(norm["mean"]) != len(self.info.bands) or len(norm["std"]) != len(self.info.bands):
            raise InputError(f"{self.info.path}: normalization has {len(norm['mean'])} bands, "
                             f"the dataset {len(self.info.bands)}")
        self.normalize = Normalize(
            mean=tuple(float(v) for v in norm["mean"]),
            std=tuple(float(v) for v in norm["std"]),
            float_source=any(np.dtype(b.dtype or "float32").kind == "f"
                             for b in self.info.bands))
        self.defer = defer_normalization and not (augment is not None and augment.v2)
        self.task = for_task(self.info.task)
        self._readers: dict[str, ChunkReader | None] = {
            name: chunk_reader(self.info.path / name)
            for name in ("image", *self.task.tile_arrays)
            if (self.info.path / name / "zarr.json").is_file()}
        self._group: Any = None
        self._pid = -1
        self.targets: Any = self.task.preload(self.info)

    @property
    def batch_normalize(self) -> Normalize | None:
        """What batches of this dataset still need: :attr:`normalize`, or None."""
        return self.normalize if self.defer else None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the open store (each worker process opens its own)."""
        state = self.__dict__.copy()
        state["_group"] = None
        state["_pid"] = -1
        return state

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of an epoch (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def _store(self) -> Any:
        if self._group is None or self._pid != os.getpid():
            self._group = zarr.open_group(str(self.info.path), mode="r")
            self._pid = os.getpid()
        return self._group

    def tile_array(self, name: str, tile: int) -> np.ndarray:
        """Tile ``tile`` of array ``name``, a new writable array in the stored dtype."""
        reader = self._readers.get(name)
        if reader is not None:
            return reader.read(tile)
        return np.array(self._store()[name][tile])

    def read(self, tile: int) -> Sample:
        """The raw sample of tile ``tile``: stored dtypes, not normalized, not augmented."""
        image = torch.from_numpy(self.tile_array("image", tile))
        return Sample(image=image, **self.task.sample(self, tile))

    def collate(self, items: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
        """A batch of this dataset's items (the DataLoader's ``collate_fn``)."""
        return self.task.collate(items)

    def _draw(self, tile: int, epoch: int) -> torch.Generator:
        """The generator of a tile's augmentation draws in an epoch."""
        return torch.Generator().manual_seed(
            (self.seed * 1_000_003 + epoch * 10_007 + tile) % (2**63))

    def __getitems__(self, keys: list[int | tuple[int, int]]) -> dict[str, Any]:
        """The collated batch of ``keys``: what :meth:`collate` makes of their items.

        A DataLoader calls this instead of :meth:`__getitem__` per key. Segmentation and
        classification tiles are decoded straight into the batch's arrays (in shared memory in
        a worker process, so nothing is copied again to pass the batch on), flipped and
        rotated on the way with a single copy. Detection boxes and torchvision v2 transforms
        take the per-item path.
        """
        pairs = [k if isinstance(k, tuple) else (k, self.epoch) for k in keys]
        readers = [self._readers.get(n) for n in ("image", *self.task.tile_arrays)]
        task = self.task
        if (not isinstance(task, BatchedDataTask) or (
                self.augment is not None and self.augment.v2)
                or any(r is None or r.shape[-1] != r.shape[-2] for r in readers)):
            return self.collate([self[k] for k in pairs])
        tiles = [int(self.indices[i]) for i, _ in pairs]
        turns = [None if self.augment is None else self.augment.draw(self._draw(t, e))
                 for t, (_, e) in zip(tiles, pairs, strict=True)]
        image = self.read_batch("image", tiles, turns)
        return {"image": image if self.defer else self.normalize(image),
                "index": torch.tensor(tiles, dtype=torch.int64),
                **task.batch(self, tiles, turns)}

    def read_batch(self, name: str, tiles: list[int],
                    turns: list[tuple[bool, bool, int] | None]) -> torch.Tensor:
        """Tiles of array ``name`` stacked, each flipped and rotated as ``turns`` says."""
        reader = self._readers[name]
        assert reader is not None
        out = torch.from_numpy(np.empty((len(tiles), *reader.shape), reader.dtype))
        if torch.utils.data.get_worker_info() is not None:
            out = out.share_memory_()  # the batch leaves the worker without another copy
            # Workers already use the cores: Blosc's own threads would only compete.
            numcodecs.blosc.use_threads = False
        dest = out.numpy()
        scratch = np.empty(reader.shape, reader.dtype)
        for j, (tile, turn) in enumerate(zip(tiles, turns, strict=True)):
            if turn is None:
                reader.read(tile, out=dest[j])
            else:
                dest[j] = orient(reader.read(tile, out=scratch), *turn)
        return out

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Item ``key``: a position in the split, or ``(position, epoch)``.

        :class:`~geovision.data.sampling.EpochSampler` yields pairs: the epoch selects the
        augmentation draws, so persistent workers need no update between epochs.
        """
        i, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        tile = int(self.indices[i])
        s = self.read(tile)
        if not self.defer:
            s = Sample(image=self.normalize(s.image), mask=s.mask, boxes=s.boxes,
                       box_labels=s.box_labels)
        if self.augment is not None:
            s = self.augment(s, self._draw(tile, epoch))
        return {"image": s.image.contiguous(), "index": tile, **self.task.item(self, s, tile)}
