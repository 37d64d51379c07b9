"""Where the windows of a scene go, how they group into blocks, and how blocks share seams.

Segmentation and detection windows form a regular grid from the scene's top-left corner:
origins ``0, s, 2s, ...`` (``s`` the stride) until the last window reaches the scene's end;
where a window passes the end, the pixels beyond are reflect-padded (see
:func:`reflect_index`). Windows are grouped into blocks of ``g x g`` windows; a block is the
unit of reading, of work on a cluster and of resuming. Each window belongs to exactly one
block, so no window runs twice; pixels covered by windows of two neighbouring blocks lie in
thin *seams* (as wide as the overlap) whose blended value is finished once both blocks are
done (see :func:`axis_segments`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from geovision.geo.windows import PixelWindow


def window_stride(window: int, overlap: float) -> int:
    """Pixels between window origins: ``window - round(window * overlap)``, at least 1."""
    return max(1, window - round(window * overlap))


def window_origins(length: int, window: int, stride: int) -> list[int]:
    """Origins of a regular grid of windows covering ``length`` pixels.

    The count is ``ceil((length - window) / stride) + 1`` (one window when the axis is no
    longer than a window); the last window may pass the end of the axis, whose pixels are then
    padded. Origins stay multiples of ``stride``, so a model with pooling sees the same pixel
    phase in every window.

    Returns:
        The origins ``k * stride`` for ``k = 0 .. count - 1``.
    """
    if window <= 0 or stride <= 0 or length <= 0:
        raise ValueError("length, window and stride must be positive")
    count = 1 if length <= window else math.ceil((length - window) / stride) + 1
    return [k * stride for k in range(count)]


def cell_origins(length: int, window: int, stride: int) -> list[int]:
    """Origins of classification windows, one centred on each ``stride``-pixel grid cell.

    Cell ``k`` covers pixels ``[k * stride, (k + 1) * stride)``; there are
    ``ceil(length / stride)`` cells, and the window of cell ``k`` starts at
    ``k * stride + stride // 2 - window // 2`` (it may start before the scene: padded).
    """
    if window <= 0 or stride <= 0 or length <= 0:
        raise ValueError("length, window and stride must be positive")
    shift = stride // 2 - window // 2
    return [k * stride + shift for k in range(math.ceil(length / stride))]


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Map pixel indices, possibly outside ``[0, length)``, into it by mirror reflection.

    Reflection does not repeat the edge pixel (numpy's ``reflect``: -1 -> 1, length ->
    length - 2) and repeats with period ``2 * (length - 1)``, so any index maps inside, even for
    scenes much smaller than a window. A one-pixel axis maps everything to 0.
    """
    index = np.asarray(index, dtype=np.int64)
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    folded = np.mod(index, period)
    return np.where(folded >= length, period - folded, folded)


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
        cells: classification layout (:func:`cell_origins`) instead of the blending grid.

    Returns:
        The layout.
    """
    origins = cell_origins if cells else window_origins
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


def intersect(a: PixelWindow, b: PixelWindow) -> PixelWindow | None:
    """The overlap of two windows, or None when they do not overlap."""
    r0, c0 = max(a.row, b.row), max(a.col, b.col)
    r1 = min(a.row + a.height, b.row + b.height)
    c1 = min(a.col + a.width, b.col + b.width)
    if r1 <= r0 or c1 <= c0:
        return None
    return PixelWindow(r0, c0, r1 - r0, c1 - c0)
