"""Which tiles a dataset holds: candidate windows and their split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geovision.geo.raster import RasterInfo
from geovision.geo.windows import PixelWindow, tile_grid

#: Split code of a tile left out because it reaches into a block of another split; such
#: tiles are dropped before the store is written, so the code is never stored.
DROPPED_SPLIT = 255


@dataclass(frozen=True)
class TileRef:
    """One tile: index of its source raster and its window there."""

    source: int
    window: PixelWindow


def candidate_tiles(sources: Sequence[RasterInfo], size: int, stride: int) -> list[TileRef]:
    """Every window of the grid over every source, sources in order, rows then columns."""
    return [
        TileRef(i, w) for i, src in enumerate(sources) for w in tile_grid(
            src.height, src.width, size, stride)
    ]


def assign_splits(
    refs: Sequence[TileRef],
    *,
    method: str,
    fractions: Sequence[float],
    block_size: int,
    seed: int,
) -> tuple[np.ndarray, int]:
    """Give each tile a split: 0 train, 1 val, 2 test.

    ``block``: the sources are cut into square blocks of ``block_size`` pixels; the blocks are
    shuffled with ``seed`` and dealt to the splits in proportion to ``fractions``; a tile goes
    to the block holding its centre. A tile that reaches into a block of another split would
    share pixels across splits, so it is left out (marked :data:`DROPPED_SPLIT`). ``random``:
    each tile draws its split independently.

    Returns:
        (split per tile, tiles left out on block borders)
    """
    rng = np.random.default_rng(seed)
    probs = np.asarray(fractions, dtype=np.float64)
    probs = probs / probs.sum()
    if method == "random":
        return rng.choice(3, size=len(refs), p=probs).astype(np.uint8), 0

    def block_of(ref: TileRef, dr: int, dc: int) -> tuple[int, int, int]:
        w = ref.window
        return (ref.source, (w.row + dr) // block_size, (w.col + dc) // block_size)

    centre_blocks = [block_of(r, r.window.height // 2, r.window.width // 2) for r in refs]
    blocks = sorted(set(centre_blocks))
    order = rng.permutation(len(blocks))
    counts = _deal(len(blocks), probs)
    block_split: dict[tuple[int, int, int], int] = {}
    pos = 0
    for split, n in enumerate(counts):
        for j in order[pos:pos + n]:
            block_split[blocks[j]] = split
        pos += n
    splits = np.array([block_split[b] for b in centre_blocks], dtype=np.uint8)
    dropped = 0
    for i, ref in enumerate(refs):
        w = ref.window
        corners = {block_of(ref, dr, dc) for dr in (0, w.height - 1) for dc in (0, w.width - 1)}
        r0, c0 = min(b[1] for b in corners), min(b[2] for b in corners)
        r1, c1 = max(b[1] for b in corners), max(b[2] for b in corners)
        touched = {
            block_split.get((ref.source, r, c), splits[i])
            for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)
        }
        if len(touched) > 1:
            splits[i] = DROPPED_SPLIT
            dropped += 1
    return splits, dropped


def _deal(n: int, probs: np.ndarray) -> list[int]:
    """Split n blocks by probabilities; a split with a share gets a block when n allows."""
    counts = np.floor(probs * n).astype(int)
    wanted = probs > 0
    while counts.sum() < n:
        counts[np.argmax(probs * n - counts)] += 1
    for k in range(3):
        if wanted[k] and counts[k] == 0 and n >= int(wanted.sum()):
            donor = int(np.argmax(counts))
            counts[donor] -= 1
            counts[k] += 1
    return [int(c) for c in counts]
