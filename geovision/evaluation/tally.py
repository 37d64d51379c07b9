"""Counting a map against its reference window by window: confusion, area and bootstrap.

A :class:`Tally` receives, for each window of the predictions' grid, the class index of the
map and of the reference at every pixel and which pixels count. It keeps three sums whose size
does not depend on the raster's: the confusion matrix in pixels, the same in area, and for each
bootstrap replicate the area matrix re-weighted by the replicate's block counts
(:func:`~geovision.evaluation.estimators.bootstrap_weights`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geovision.evaluation.estimators import bootstrap_weights
from geovision.geo.windows import PixelWindow


class Tally:
    """Sums of a score, grown as classes appear.

    Matrices have rows reference, columns predicted (map).

    Args:
        replicates: bootstrap replicates (0: none).
        block: side in pixels of the bootstrap's blocks, counted from the grid's origin.
        seed: the bootstrap's seed.

    Attributes:
        counts: ``(K, K)`` int64 pixels.
        area: ``(K, K)`` float64 area.
        replicates: ``(R, K, K)`` float64 area per replicate.
        blocks: bootstrap blocks that hold at least one scored pixel, as (row, col).
    """

    def __init__(self, replicates: int, block: int, seed: int) -> None:
        self.block = block
        self.seed = seed
        self.n_replicates = replicates
        self.counts = np.zeros((0, 0), dtype=np.int64)
        self.area = np.zeros((0, 0))
        self.replicates = np.zeros((replicates, 0, 0))
        self.blocks: set[tuple[int, int]] = set()

    @property
    def k(self) -> int:
        """Classes counted so far."""
        return int(self.counts.shape[0])

    def grow(self, k: int) -> None:
        """Make room for ``k`` classes (new rows and columns are zero)."""
        extra = k - self.k
        if extra <= 0:
            return
        self.counts = np.pad(self.counts, ((0, extra), (0, extra)))
        self.area = np.pad(self.area, ((0, extra), (0, extra)))
        self.replicates = np.pad(self.replicates, ((0, 0), (0, extra), (0, extra)))

    def add(self, window: PixelWindow, reference: np.ndarray, predicted: np.ndarray,
            scored: np.ndarray, row_area: np.ndarray) -> None:
        """Count one window.

        Args:
            window: where the window lies in the grid.
            reference: ``(h, w)`` reference class index of each pixel.
            predicted: ``(h, w)`` map class index of each pixel.
            scored: ``(h, w)`` True where the pixel counts (both indices valid).
            row_area: ``(h,)`` area of one pixel of each row.
        """
        k = self.k
        rows = window.row + np.arange(window.height)
        cols = window.col + np.arange(window.width)
        brow, bcol = rows // self.block, cols // self.block
        n_bcol = int(bcol[-1] - bcol[0] + 1)
        n_cells = int(brow[-1] - brow[0] + 1) * n_bcol
        size = n_cells * k * k
        kind: type[np.signedinteger[Any]] = np.int32 if size < 2**31 else np.int64
        # code = (cell * k + reference) * k + predicted, from per-row and per-column parts
        row_part = ((brow - brow[0]) * n_bcol * k * k).astype(kind)
        col_part = ((bcol - bcol[0]) * k * k).astype(kind)
        code: np.ndarray = reference.astype(kind) * k
        code += predicted.astype(kind, copy=False)
        code += row_part[:, None]
        code += col_part[None, :]
        picked = code[scored]
        counts = np.bincount(picked, minlength=size).reshape(n_cells, k, k)
        area: np.ndarray
        if np.all(row_area == row_area[0]):
            area = counts * float(row_area[0])
        else:
            pixel_area = np.broadcast_to(row_area[:, None], scored.shape)[scored]
            area = np.bincount(picked, weights=pixel_area, minlength=size).reshape(
                n_cells, k, k)
        self.counts += counts.sum(axis=0)
        self.area += area.sum(axis=0)
        busy = np.flatnonzero(counts.reshape(n_cells, -1).sum(axis=1))
        if len(busy) == 0:
            return
        ids = [(int(brow[0] + c // n_bcol), int(bcol[0] + c % n_bcol)) for c in busy]
        self.blocks.update(ids)
        if self.n_replicates == 0:
            return
        weights = np.stack([bootstrap_weights(self.seed, b, self.n_replicates) for b in ids],
                           axis=1)                                   # (R, cells)
        self.replicates += (weights @ area[busy].reshape(len(busy), -1)).reshape(-1, k, k)
