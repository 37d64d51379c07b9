"""Epoch orders that depend only on (seed, epoch): reproducible, resumable, DDP-aware."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    """Shuffled (or sequential) indices whose order is a function of seed and epoch.

    It yields ``(index, epoch)`` pairs, which :class:`~geovision.data.dataset.TileDataset`
    accepts, so that augmentation draws follow the epoch even in persistent workers.

    Under DistributedDataParallel each of ``world`` processes takes every ``world``-th index
    of the same order, starting at its ``rank``; the order is padded by repeating its start so
    that every process gets the same number of batches.

    Args:
        length: dataset length.
        shuffle: draw a permutation (training) or keep the order (evaluation).
        seed: base seed.
        rank: this process's rank.
        world: number of processes.
    """

    def __init__(self, length: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                 world: int = 1) -> None:
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world = world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of ``epoch``."""
        self.epoch = epoch

    def order(self) -> list[int]:
        """Indices this process visits in the current epoch."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
            idx = torch.randperm(self.length, generator=g).tolist()
        else:
            idx = list(range(self.length))
        if self.world > 1:
            per = -(-self.length // self.world)
            idx = (idx * (1 + per * self.world // max(self.length, 1)))[: per * self.world]
            idx = idx[self.rank::self.world]
        return idx

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(i, self.epoch) for i in self.order()])

    def __len__(self) -> int:
        if self.world > 1:
            return -(-self.length // self.world)
        return self.length
