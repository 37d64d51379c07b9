"""Windows over a raster: small frozen values and all the arithmetic on them.

Two rules place windows along an axis, named for how they treat the axis's end:

* :func:`flush_origins` (tiling): windows lie inside the raster; the last one is placed
  flush with the end, so no strip is left out, and an axis shorter than a window gets none;
* :func:`padded_origins` (inference): a regular grid from 0, whose last window may pass the
  end; pixels beyond it are read by reflection (:func:`reflect_index`). :func:`cell_origins`
  centres one window on each cell of a coarser grid (classification).

A raster's pixel grid (CRS, affine, size) as one value is :class:`geovision.geo.grid.Grid`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine


@dataclass(frozen=True, order=True)
class PixelWindow:
    """A rectangle of whole pixels: origin (row, col) and size (height, width)."""

    row: int
    col: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Numpy slices (rows, cols) that cut this window from a full-raster array."""
        return (slice(self.row, self.row + self.height), slice(self.col, self.col + self.width))

    def transform(self, parent: Affine) -> Affine:
        """The affine of this window, given the affine of the raster it is cut from."""
        return parent @ Affine.translation(self.col, self.row)


def intersect(a: PixelWindow, b: PixelWindow) -> PixelWindow | None:
    """The overlap of two windows, or None when they do not overlap."""
    r0, c0 = max(a.row, b.row), max(a.col, b.col)
    r1 = min(a.row + a.height, b.row + b.height)
    c1 = min(a.col + a.width, b.col + b.width)
    if r1 <= r0 or c1 <= c0:
        return None
    return PixelWindow(r0, c0, r1 - r0, c1 - c0)


def flush_origins(length: int, size: int, stride: int) -> list[int]:
    """Origins of windows of ``size`` pixels every ``stride`` pixels, inside the axis.

    The windows cover the whole axis: origins are ``0, stride, 2*stride, ...`` while a window
    fits, and when the last of them stops short of the end, one more window is placed flush
    with the end (origin ``length - size``), so no strip of pixels is left out. For
    ``length >= size`` the count is ``ceil((length - size) / stride) + 1``. An axis shorter than
    one window gets no window.

    Args:
        length: pixels along the axis.
        size: window size in pixels.
        stride: pixels between consecutive origins (``stride < size`` overlaps windows).

    Returns:
        Sorted, distinct origins.
    """
    if size <= 0 or stride <= 0:
        raise ValueError("size and stride must be positive")
    if length < size:
        return []
    origins = list(range(0, length - size + 1, stride))
    if origins[-1] != length - size:
        origins.append(length - size)
    return origins


def padded_origins(length: int, window: int, stride: int) -> list[int]:
    """Origins of a regular grid of windows covering ``length`` pixels, past the end if need be.

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
    """Origins of windows centred on each ``stride``-pixel cell of the axis (padded).

    Cell ``k`` covers pixels ``[k * stride, (k + 1) * stride)``; there are
    ``ceil(length / stride)`` cells, and the window of cell ``k`` starts at
    ``k * stride + stride // 2 - window // 2`` (it may start before the axis: padded).
    """
    if window <= 0 or stride <= 0 or length <= 0:
        raise ValueError("length, window and stride must be positive")
    shift = stride // 2 - window // 2
    return [k * stride + shift for k in range(math.ceil(length / stride))]


def window_stride(window: int, overlap: float) -> int:
    """Pixels between window origins: ``window - round(window * overlap)``, at least 1."""
    return max(1, window - round(window * overlap))


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Map pixel indices, possibly outside ``[0, length)``, into it by mirror reflection.

    Reflection does not repeat the edge pixel (numpy's ``reflect``: -1 -> 1, length ->
    length - 2) and repeats with period ``2 * (length - 1)``, so any index maps inside, even for
    axes much shorter than a window. A one-pixel axis maps everything to 0.
    """
    index = np.asarray(index, dtype=np.int64)
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    folded = np.mod(index, period)
    return np.where(folded >= length, period - folded, folded)


def take_runs(array: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    """``np.take(array, index, axis)`` by slice copies, for an index made of runs of steps -1, 0, 1.

    Mirrored indices (:func:`reflect_index` of a range) are a few such runs: copying each run
    as one slice moves whole rows at memory speed, where a gather goes element by element
    (a 1664^2 x 4 block past a scene's corner: 3.5 ms against 44 ms with ``np.ix_``).
    """
    index = np.asarray(index, dtype=np.int64)
    n = len(index)
    shape = list(array.shape)
    shape[axis] = n
    out = np.empty(shape, dtype=array.dtype)
    steps = np.diff(index)
    i = 0
    while i < n:
        step = int(steps[i]) if i + 1 < n else 1
        if i + 1 < n and abs(step) <= 1:  # the run goes on while the step stays the same
            other = np.flatnonzero(steps[i:] != step)
            j = i + 1 + (int(other[0]) if other.size else n - 1 - i)
        else:  # a jump: a run of one pixel
            step, j = 1, i + 1
        first = int(index[i])
        if step == 1:
            source = slice(first, first + j - i)
        elif step == -1:
            last = first - (j - i)
            source = slice(first, last if last >= 0 else None, -1)
        else:  # one pixel repeated
            source = slice(first, first + 1)
        target: list[slice] = [slice(None)] * array.ndim
        target[axis] = slice(i, j)
        picked: list[slice] = [slice(None)] * array.ndim
        picked[axis] = source
        out[tuple(target)] = array[tuple(picked)]
        i = j
    return out


def tile_grid(height: int, width: int, size: int, stride: int) -> list[PixelWindow]:
    """Square windows inside a raster, in row-major order (see :func:`flush_origins`)."""
    return [
        PixelWindow(r, c, size, size)
        for r in flush_origins(height, size, stride)
        for c in flush_origins(width, size, stride)
    ]


def window_bounds(window: PixelWindow, transform: Affine) -> tuple[float, float, float, float]:
    """Map bounds (left, bottom, right, top) of a window on a north-up or south-up grid."""
    x0, y0 = transform @ (window.col, window.row)
    x1, y1 = transform @ (window.col + window.width, window.row + window.height)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
