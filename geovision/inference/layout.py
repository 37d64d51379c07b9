"""Where the windows of a scene go, how they group into blocks, and how blocks share seams.

Segmentation and detection windows form a regular grid from the scene's top-left corner:
origins ``0, s, 2s, ...`` (``s`` the stride) until the last window reaches the scene's end;
where a window passes the end, the pixels beyond are reflect-padded (the padded origin rule
of :mod:`geovision.geo.windows`; classification centres windows on cells instead). Windows
are grouped into blocks of ``g x g`` windows; a block is the unit of reading, of work on a
cluster and of resuming. Each window belongs to exactly one block, so no window runs twice;
pixels covered by windows of two neighbouring blocks lie in thin *seams* (as wide as the
overlap) whose blended value is finished once both blocks are done (see
:func:`axis_segments`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from geovision.geo.windows import PixelWindow, cell_origins, padded_origins


@dataclass(frozen=True)
class Segment:
    """A run of pixels ``[start, stop)`` along one axis and the blocks whose windows cover it."""

    start: int
    stop: int
    owners: tuple[int, ...]


def group_count(window: int, stride: int, per_block: int) -> int:
    """Windows per block along an axis: ``per_block``, raised so only neighbours share pixels.

    Blocks ``b - 1`` and ``b + 1`` never overlap when ``g * stride >= window - stride``.
    """
    need = math.ceil(max(window - stride, 0) / stride)
    return max(1, per_block, need)


def block_ranges(count: int, group: int) -> list[range]:
    """Window indices of each block along an axis: consecutive runs of ``group`` windows."""
    return [range(i, min(i + group, count)) for i in range(0, count, group)]


def block_extent(origins: list[int], indices: range, window: int) -> tuple[int, int]:
    """Pixels ``[start, stop)`` spanned by a block's windows (may pass the scene's edges)."""
    return origins[indices.start], origins[indices.stop - 1] + window


def axis_segments(length: int, extents: list[tuple[int, int]]) -> list[Segment]:
    """Cut ``[0, length)`` into runs covered by the same blocks.

    Args:
        length: pixels along the axis.
        extents: ``[start, stop)`` of each block's windows, in order.

    Returns:
        Consecutive segments tiling ``[0, length)``; a segment owned by one block is finished
        by that block alone, one owned by two is a seam.
    """
    cuts = {0, length}
    for start, stop in extents:
        cuts.update(x for x in (start, stop) if 0 < x < length)
    edges = sorted(cuts)
    out = []
    for a, b in itertools.pairwise(edges):
        owners = tuple(i for i, (s, e) in enumerate(extents) if s <= a and b <= e)
        out.append(Segment(a, b, owners))
    return out


@dataclass(frozen=True)
class Piece:
    """A rectangle of the scene owned by the same blocks: finished by one, or a seam."""

    index: tuple[int, int]
    window: PixelWindow
    owners: tuple[tuple[int, int], ...]

    @property
    def is_seam(self) -> bool:
        """True when windows of more than one block cover it."""
        return len(self.owners) > 1


@dataclass(frozen=True)
class Block:
    """A group of windows read and run together.

    Attributes:
        index: (block row, block column).
        region: pixels spanned by its windows (may pass the scene's edges: padded).
        windows: origins (row, col) of its windows, in scene pixels.
    """

    index: tuple[int, int]
    region: PixelWindow
    windows: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Layout:
    """Windows, blocks and pieces of one scene (see the module docstring).

    Attributes:
        height: scene rows.
        width: scene columns.
        window: window side in pixels.
        stride: pixels between window origins.
        row_origins: window origins along rows.
        col_origins: window origins along columns.
        blocks: the blocks in row-major order.
        pieces: the pieces in row-major order.
    """

    height: int
    width: int
    window: int
    stride: int
    row_origins: tuple[int, ...]
    col_origins: tuple[int, ...]
    blocks: tuple[Block, ...]
    pieces: tuple[Piece, ...]

    @property
    def n_windows(self) -> int:
        """Windows in the scene."""
        return len(self.row_origins) * len(self.col_origins)


def make_layout(height: int, width: int, window: int, stride: int, *, per_block: int = 4,
                cells: bool = False) -> Layout:
    """Plan the windows, blocks and pieces of a ``height x width`` scene.

    Args:
        height: scene rows.
        width: scene columns.
        window: window side.
        stride: pixels between window origins.
        per_block: windows per block along each axis (raised where the overlap needs it).
        cells: windows centred on cells (classification) instead of the blending grid.

    Returns:
        The layout.
    """
    origins = cell_origins if cells else padded_origins
    rows, cols = origins(height, window, stride), origins(width, window, stride)
    group = group_count(window, stride, per_block)
    r_ranges, c_ranges = block_ranges(len(rows), group), block_ranges(len(cols), group)
    r_ext = [block_extent(rows, r, window) for r in r_ranges]
    c_ext = [block_extent(cols, c, window) for c in c_ranges]
    blocks = tuple(
        Block(
            index=(bi, bj),
            region=PixelWindow(r_ext[bi][0], c_ext[bj][0], r_ext[bi][1] - r_ext[bi][0],
                               c_ext[bj][1] - c_ext[bj][0]),
            windows=tuple((rows[i], cols[j]) for i in rr for j in cc),
        )
        for bi, rr in enumerate(r_ranges) for bj, cc in enumerate(c_ranges)
    )
    r_seg, c_seg = axis_segments(height, r_ext), axis_segments(width, c_ext)
    pieces = tuple(
        Piece(index=(pi, pj),
              window=PixelWindow(rs.start, cs.start, rs.stop - rs.start, cs.stop - cs.start),
              owners=tuple((a, b) for a in rs.owners for b in cs.owners))
        for pi, rs in enumerate(r_seg) for pj, cs in enumerate(c_seg)
    )
    return Layout(height, width, window, stride, tuple(rows), tuple(cols), blocks, pieces)


def block_pieces(block: Block, pieces: tuple[Piece, ...]) -> list[Piece]:
    """The pieces a block's windows reach."""
    return [p for p in pieces if block.index in p.owners]
