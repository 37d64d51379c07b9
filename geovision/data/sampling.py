"""Epoch orders that depend only on (seed, epoch): reproducible, resumable, DDP-aware."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
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


def balanced_weights(presence: np.ndarray) -> np.ndarray:
    """Per-tile draw weights from the classes each tile holds.

    A tile's weight is ``1 / (tiles holding c)`` for its rarest class ``c``: a class held by
    few tiles is drawn about as often as a common one (for one class per tile, each class
    gets the same share exactly). Tiles holding no class (every pixel unlabelled) get 0,
    unless no tile holds any.

    Args:
        presence: bool ``(tiles, classes)``, which classes each tile holds.

    Returns:
        float64 ``(tiles,)`` weights (not normalized).
    """
    presence = np.asarray(presence, dtype=bool)
    per_class = presence.sum(axis=0).astype(np.float64)
    inverse = np.where(per_class > 0, 1.0 / np.maximum(per_class, 1.0), 0.0)
    weights = (presence * inverse[None, :]).max(axis=1, initial=0.0)
    if not (weights > 0).any():
        return np.ones(len(presence))
    return weights


class BalancedSampler(EpochSampler):
    """Tiles drawn with replacement: by weight, or a fixed share of positives per batch.

    Each epoch draws as many tiles as the split holds (so epochs keep their length), in an
    order that depends only on (seed, epoch), split between DDP processes as
    :class:`EpochSampler` does.

    Args:
        weights: per-tile weights (:func:`balanced_weights`), used without ``positives``.
        positives: bool per tile, True for tiles holding objects (detection).
        positive_fraction: share of each batch drawn from ``positives``; every block of
            ``batch_size x world`` draws holds ``round(fraction x block)`` of them, so each
            batch of a single process holds exactly that many.
        batch_size: tiles per batch (per process).
        seed, rank, world: as in :class:`EpochSampler`.
    """

    def __init__(self, weights: np.ndarray, *, positives: np.ndarray | None = None,
                 positive_fraction: float | None = None, batch_size: int = 1, seed: int = 0,
                 rank: int = 0, world: int = 1) -> None:
        super().__init__(len(weights), shuffle=True, seed=seed, rank=rank, world=world)
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.positives = None if positives is None else np.asarray(positives, dtype=bool)
        self.positive_fraction = positive_fraction
        self.batch_size = batch_size

    def _total(self) -> int:
        return -(-self.length // self.world) * self.world

    def draws(self) -> list[int]:
        """The epoch's draws of every process, before they are split between processes."""
        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        total = self._total()
        pos = (np.flatnonzero(self.positives) if self.positives is not None
               else np.zeros(0, np.int64))
        neg = (np.flatnonzero(~self.positives) if self.positives is not None
               else np.zeros(0, np.int64))
        if self.positive_fraction is None or not len(pos) or not len(neg):
            return torch.multinomial(self.weights, total, replacement=True,
                                     generator=g).tolist()
        block = self.batch_size * self.world
        k = min(block, max(1, round(self.positive_fraction * block)))
        blocks = -(-total // block)
        p = torch.as_tensor(pos)[torch.randint(len(pos), (blocks, k), generator=g)]
        n = torch.as_tensor(neg)[torch.randint(len(neg), (blocks, block - k), generator=g)]
        both = torch.cat([p, n], dim=1)
        shuffle = torch.argsort(torch.rand(both.shape, generator=g), dim=1)
        return torch.gather(both, 1, shuffle).reshape(-1)[:total].tolist()

    def order(self) -> list[int]:
        """Indices this process visits in the current epoch."""
        idx = self.draws()
        return idx[self.rank::self.world] if self.world > 1 else idx
