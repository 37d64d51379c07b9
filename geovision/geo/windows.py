"""Tile and window grids over a raster: small frozen values and the arithmetic on them."""

from __future__ import annotations

from dataclasses import dataclass

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


def axis_origins(length: int, size: int, stride: int) -> list[int]:
    """Origins of windows of ``size`` pixels every ``stride`` pixels along an axis.

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


def tile_grid(height: int, width: int, size: int, stride: int) -> list[PixelWindow]:
    """Square windows covering a raster, in row-major order (see :func:`axis_origins`)."""
    return [
        PixelWindow(r, c, size, size)
        for r in axis_origins(height, size, stride)
        for c in axis_origins(width, size, stride)
    ]


def window_bounds(window: PixelWindow, transform: Affine) -> tuple[float, float, float, float]:
    """Map bounds (left, bottom, right, top) of a window on a north-up or south-up grid."""
    x0, y0 = transform @ (window.col, window.row)
    x1, y1 = transform @ (window.col + window.width, window.row + window.height)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
