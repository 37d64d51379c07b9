"""Blocks: rectangles of a source read in one go, aligned to its storage blocks.

Decoding costs most when a storage block (a GeoTIFF tile or strip) is decoded more than once:
reading a 512-row block as two 256-row windows decodes it twice unless GDAL's block cache
still holds it. A tiling pass therefore reads the source in *blocks*: groups of whole tiles
whose pixel span follows the storage grid, each read once.

Grouping (per source, tile origins ``r`` along rows and ``c`` along columns):

* rows: tile row ``r`` goes to row group ``r // H`` with ``H = bh * ceil(size / bh)``, the
  smallest multiple of the storage block height ``bh`` holding a tile. With ``stride`` a
  divisor or multiple of ``H`` every block spans whole storage rows and no block is decoded
  twice; otherwise only the rows a tile reaches into the next group are decoded again.
* columns: the whole width in one block while ``rows x width x bands x itemsize`` fits
  ``budget`` bytes, else column groups ``c // W`` with ``W`` the largest multiple of the
  storage block width ``bw`` (and at least ``bw * ceil(size / bw)``) that fits it. Memory per
  task is bounded by ``budget``, whatever the raster's size.
* the end: the last ``tail_rows`` row groups of the last source are cut into columns with a
  budget of ``budget / tail_split`` (same rule). A pass on ``w`` threads ends when its last
  block does; with whole rows of blocks one thread may run the last one alone (up to a
  block's time, one core idle), with smaller last blocks the threads end closer together.
  Column cuts stay on storage block borders, so nothing is decoded twice.

A block's window is the union of its tiles; its tiles keep candidate order (row-major).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geovision.geo.windows import PixelWindow
from geovision.tiling.plan import TileRef

#: Bytes of source pixels one block holds at most (unless one tile row needs more).
BLOCK_BUDGET = 16 * 2**20
#: Row groups at the end of a plan cut into smaller blocks, and by how much their budget is cut.
TAIL_ROWS, TAIL_SPLIT = 1, 4


@dataclass(frozen=True)
class Block:
    """A window of one source and the candidate tiles it holds.

    Attributes:
        source: index of the source.
        window: the pixels read (the union of the tiles).
        tiles: candidate indices of the tiles, ascending.
        rows: each tile's row offset inside ``window``.
        cols: each tile's column offset inside ``window``.
    """

    source: int
    window: PixelWindow
    tiles: np.ndarray
    rows: np.ndarray
    cols: np.ndarray


def _span(length: int, block: int) -> int:
    """Smallest multiple of ``block`` that is at least ``length``."""
    return block * max(1, math.ceil(length / block))


def plan_blocks(
    refs: Sequence[TileRef],
    storage: Sequence[tuple[int, int]],
    pixel_bytes: Sequence[int],
    size: int,
    budget: int = BLOCK_BUDGET,
    tail_rows: int = TAIL_ROWS,
    tail_split: int = TAIL_SPLIT,
) -> list[Block]:
    """Group candidate tiles into blocks (see the module docstring).

    Args:
        refs: candidate tiles, in candidate order (sources in order, rows then columns).
        storage: per source, its storage block shape ``(bh, bw)``.
        pixel_bytes: per source, bytes of one pixel over the bands read.
        size: tile side in pixels.
        budget: bytes of pixels a block may hold.
        tail_rows: row groups at the end of the last source whose budget is cut.
        tail_split: by how much their budget is cut.

    Returns:
        Blocks in candidate order of their first tile.
    """
    by_source: dict[int, list[int]] = {}
    for i, ref in enumerate(refs):
        by_source.setdefault(ref.source, []).append(i)
    blocks: list[Block] = []
    last = max(by_source, default=0)
    for src, idx in by_source.items():
        bh, bw = storage[src]
        rows = np.array([refs[i].window.row for i in idx])
        cols = np.array([refs[i].window.col for i in idx])
        height = _span(size, bh)
        group_rows = rows // height
        row_groups = np.unique(group_rows)
        for n, g in enumerate(row_groups):
            most = budget
            if src == last and n >= len(row_groups) - tail_rows:
                most = max(1, budget // max(1, tail_split))
            sel = np.flatnonzero(group_rows == g)
            r0, r1 = int(rows[sel].min()), int(rows[sel].max()) + size
            c_all = cols[sel]
            width = int(c_all.max()) + size - int(c_all.min())
            if (r1 - r0) * width * pixel_bytes[src] <= most:
                col_groups = np.zeros(len(sel), dtype=np.int64)
            else:
                fit = most // max(1, (r1 - r0) * pixel_bytes[src])
                span = max(_span(size, bw), bw * (fit // bw))
                col_groups = c_all // span
            for cg in np.unique(col_groups):
                part = sel[col_groups == cg]
                c0 = int(cols[part].min())
                c1 = int(cols[part].max()) + size
                tiles = np.array([idx[k] for k in part], dtype=np.int64)
                blocks.append(Block(
                    source=src, window=PixelWindow(r0, c0, r1 - r0, c1 - c0), tiles=tiles,
                    rows=rows[part] - r0, cols=cols[part] - c0))
    blocks.sort(key=lambda b: int(b.tiles[0]))
    return blocks


def valid_counts(valid: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int
                 ) -> np.ndarray:
    """Valid pixels of each tile of a block, from the block's boolean valid mask.

    For each distinct tile row offset ``r``, columns are summed once over rows
    ``r .. r + size``; with ``S`` their running sum (``S[0] = 0``), a tile at column ``c``
    holds ``S[c + size] - S[c]`` valid pixels.
    """
    out = np.empty(len(rows), dtype=np.int64)
    if valid.all():
        out[:] = size * size
        return out
    for r in np.unique(rows):
        sel = np.flatnonzero(rows == r)
        per_col = np.concatenate([[0], np.cumsum(valid[r:r + size].sum(axis=0,
                                                                          dtype=np.int64))])
        c = cols[sel]
        out[sel] = per_col[c + size] - per_col[c]
    return out
