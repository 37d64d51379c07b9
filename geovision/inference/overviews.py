"""Overview levels of an output raster, computed strip by strip as its rows are finished.

The levels are the ones GDAL's COG driver builds, computed the way it computes them, so that a
Cloud Optimized GeoTIFF assembled from them holds the overviews that ``gdal_translate -of COG``
would have written (see ``tests/inference/test_overviews.py``, which compares them with GDAL's
to the byte):

- sizes: each level halves the previous one, rounding down (at least one pixel), until the
  level fits in one tile (:func:`overview_shapes`);
- each level is computed from the previous one (level 1 from full resolution);
- destination pixel ``i`` of an axis reads the source pixels ``[int(i r + 1e-8),
  ceil((i + 1) r - 1e-8))`` with ``r = source size / destination size``
  (:func:`axis_windows`): a 2 x 2 block where the source size is even, up to 3 x 3 where it is
  odd (``r`` slightly above 2);
- ``MODE`` takes the value that first reaches the highest count in a row-major scan of the
  window, nodata left out (:func:`mode`); ``AVERAGE`` weighs the window's first and last pixel
  by the share of them inside ``[i r, (i + 1) r)``, leaves nodata out and rounds to nearest for
  integers (:func:`average`); a window with no valid pixel is nodata.

:class:`Pyramid` keeps, per level, only the source rows that the next destination rows still
need, so memory grows with the raster's width, never with its height.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

#: Resampling names, as GDAL spells them, per kind of raster.
MODE = "MODE"
AVERAGE = "AVERAGE"

_EPS = 1e-8  # GDAL's guard against rounding in the window limits


def overview_shapes(height: int, width: int, tile: int) -> list[tuple[int, int]]:
    """``(rows, cols)`` of each overview level, largest first.

    A level has ``max(1, floor(n / 2))`` pixels along each axis of the previous one; levels are
    added while the previous one is larger than a tile along either axis.
    """
    shapes = []
    h, w = height, width
    while max(h, w) > tile:
        h, w = max(1, h // 2), max(1, w // 2)
        shapes.append((h, w))
    return shapes


@dataclass(frozen=True)
class AxisWindows:
    """The source pixels of each destination pixel along one axis.

    Attributes:
        start: first source pixel of each destination pixel.
        stop: one past its last source pixel.
        first: weight of the first source pixel (the share of it inside the footprint).
        last: weight of the last source pixel.
    """

    start: np.ndarray
    stop: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @property
    def span(self) -> int:
        """The most source pixels any destination pixel reads."""
        return int((self.stop - self.start).max()) if len(self.start) else 0


def axis_windows(src: int, dst: int) -> AxisWindows:
    """Source windows of ``dst`` destination pixels over ``src`` source pixels (GDAL's rule).

    Footprint ``[i r, (i + 1) r)`` with ``r = src / dst``; the window is its pixels
    ``[int(i r + 1e-8), ceil((i + 1) r - 1e-8))`` (at least one, at most to ``src``); the
    first pixel weighs ``1 - (i r - start)`` (1 for a one-pixel window) and the last
    ``1 - (stop - (i + 1) r)``.
    """
    ratio = src / dst
    i = np.arange(dst, dtype=np.float64)
    f0 = i * ratio
    f1 = (i + 1) * ratio
    start = (f0 + _EPS).astype(np.int64)
    stop = np.ceil(f1 - _EPS).astype(np.int64)
    stop = np.where(stop == start, stop + 1, stop)
    stop = np.minimum(stop, src)
    first = np.where(stop == start + 1, 1.0, 1.0 - (f0 - start))
    last = 1.0 - (stop - f1)
    return AxisWindows(start, stop, first, last)


Index = slice | np.ndarray


@dataclass(frozen=True)
class _Position:
    """One position of the windows along an axis, for every destination pixel at once.

    Attributes:
        index: source index of each destination pixel (a strided slice where every window is
            two pixels starting at ``2 i``: a view, no gather).
        weight: its weight (None: all 1).
        present: whether the window reaches this position (None: all do).
    """

    index: Index
    weight: np.ndarray | None
    present: np.ndarray | None


def _positions(win: AxisWindows, offset: int) -> list[_Position]:
    """The positions first, middle..., last of every window, as GDAL adds them.

    ``offset`` is subtracted from the source indices (the first source row held).
    """
    n = win.stop - win.start
    if len(n) and bool((n == 2).all()) and bool((np.diff(win.start) == 2).all()):
        s0 = int(win.start[0]) - offset
        stop = s0 + 2 * len(n)
        return [_Position(slice(s0, stop, 2), None, None),
                _Position(slice(s0 + 1, stop + 1, 2), None, None)]
    out = []
    for k in range(win.span):
        present = n > k
        index = np.where(present, win.start + k, win.start) - offset
        weight = win.first if k == 0 else np.where(n == k + 1, win.last, 1.0)
        out.append(_Position(index, np.where(present, weight, 0.0), present))
    return out


def _gather(src: np.ndarray, y: _Position, x: _Position, nodata: float | None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """The source values at one window position and whether they count (present and valid)."""
    if isinstance(y.index, slice) and isinstance(x.index, slice):
        v = src[:, y.index, x.index]
    else:
        yi = np.arange(src.shape[1])[y.index] if isinstance(y.index, slice) else y.index
        xi = np.arange(src.shape[2])[x.index] if isinstance(x.index, slice) else x.index
        v = src[:, yi[:, None], xi[None, :]]
    if nodata is None:
        ok = np.ones(v.shape, dtype=bool)
    elif math.isnan(nodata):
        ok = ~np.isnan(v)
    else:
        ok = v != src.dtype.type(nodata)
    if y.present is not None:
        ok &= y.present[None, :, None]
    if x.present is not None:
        ok &= x.present[None, None, :]
    return v, ok


def mode(src: np.ndarray, rows: AxisWindows, cols: AxisWindows, row0: int,
         nodata: float | None) -> np.ndarray:
    """GDAL's ``MODE`` of ``src`` over the given windows.

    Args:
        src: ``(bands, n, width)`` source rows, the first being source row ``row0``.
        rows: windows of the destination rows to compute (indices in source rows).
        cols: windows of every destination column.
        row0: source row of ``src[:, 0]``.
        nodata: value left out of the count (None: none), and the value of empty windows.

    Returns:
        ``(bands, len(rows.start), len(cols.start))`` in ``src``'s dtype: in each window, the
        value that first reaches the highest count in a row-major scan.
    """
    ys, xs = _positions(rows, row0), _positions(cols, 0)
    if np.issubdtype(src.dtype, np.integer) and all(
            isinstance(p.index, slice) for p in (*ys, *xs)):
        return _mode_2x2_int(src, ys, xs, nodata)
    return _first_mode([_gather(src, y, x, nodata) for y in ys for x in xs], nodata)


def _first_mode(seen: list[tuple[np.ndarray, np.ndarray]], nodata: float | None) -> np.ndarray:
    """The value that first reaches the highest count among ``(values, counts)`` in order."""
    shape, dtype = seen[0][0].shape, seen[0][0].dtype
    best = np.full(shape, 0 if nodata is None else nodata, dtype=dtype)
    best_n = np.zeros(shape, dtype=np.uint8)
    for p, (v, ok) in enumerate(seen):
        count = ok.astype(np.uint8)
        for q in range(p):
            count += (seen[q][0] == v) & seen[q][1]
        count *= ok
        better = count > best_n
        np.copyto(best, v, where=better)
        np.copyto(best_n, count, where=better)
    return best


def _mode_2x2_int(src: np.ndarray, ys: list[_Position], xs: list[_Position],
                  nodata: float | None) -> np.ndarray:
    """:func:`mode` of integers over exact 2 x 2 windows ``[a, b / c, d]``.

    With four valid pixels the rule reads: ``a`` if ``b == a`` (no other value can reach 2
    sooner); else ``c`` if it repeats ``a`` or ``b``; else ``d`` if it repeats any; else ``a``
    (all differ). Windows holding nodata are computed apart, by the general rule.
    """
    a, b, c, d = (np.ascontiguousarray(src[:, y.index, x.index]) for y in ys for x in xs)
    out = np.where((d == a) | (d == b) | (d == c), d, a)
    np.copyto(out, c, where=(c == a) | (c == b))
    np.copyto(out, a, where=a == b)
    if nodata is None or not _holds(src, nodata):
        return out
    nd = src.dtype.type(nodata)
    holed = (a == nd) | (b == nd) | (c == nd) | (d == nd)
    at = np.nonzero(holed)
    out[at] = _first_mode([(v[at], v[at] != nd) for v in (a, b, c, d)], nodata)
    return out


def _holds(src: np.ndarray, value: float) -> bool:
    """Whether integer ``src`` holds ``value`` (one reduction where it is the dtype's limit)."""
    info = np.iinfo(src.dtype)
    if value == info.max:
        return bool(src.max() == value)
    if value == info.min:
        return bool(src.min() == value)
    return bool((src == src.dtype.type(value)).any()) if info.min < value < info.max else False


def average(src: np.ndarray, rows: AxisWindows, cols: AxisWindows, row0: int,
            nodata: float | None) -> np.ndarray:
    """GDAL's ``AVERAGE`` of ``src`` over the given windows (arguments as :func:`mode`).

    Returns:
        The weighted mean of the valid pixels of each window, summed line by line in float64
        in GDAL's order; integers round half up (``int(mean + 0.5)``), floats are cast.
    """
    ys, xs = _positions(rows, row0), _positions(cols, 0)
    integer = np.issubdtype(src.dtype, np.integer)
    if integer and all(isinstance(p.index, slice) for p in (*ys, *xs)):
        return _average_2x2_int(src, ys, xs, nodata)
    total: np.ndarray | float = 0.0
    weight: np.ndarray | float = 0.0
    count: np.ndarray | int = 0
    for y in ys:
        line: np.ndarray | float = 0.0
        line_w: np.ndarray | float = 0.0
        for x in xs:
            v, ok = _gather(src, y, x, nodata)
            w = ok.astype(np.float64)
            if x.weight is not None:
                w *= x.weight[None, None, :]
            line = line + np.where(ok, v, 0).astype(np.float64) * w
            line_w = line_w + w
            count = count + ok
        wy = 1.0 if y.weight is None else y.weight[None, :, None]
        total = total + line * wy
        weight = weight + line_w * wy
    empty = np.asarray(count) == 0
    mean = np.asarray(total) / np.where(empty, 1.0, weight)
    if integer:
        out = (mean + 0.5).astype(src.dtype)
        if nodata is not None:
            out[(out == src.dtype.type(nodata)) & ~empty] = _replacement(src.dtype, nodata)
    else:
        out = mean.astype(src.dtype)
    out[empty] = src.dtype.type(0 if nodata is None else nodata)
    return out


def _average_2x2_int(src: np.ndarray, ys: list[_Position], xs: list[_Position],
                     nodata: float | None) -> np.ndarray:
    """:func:`average` of integers over exact 2 x 2 windows, in integer arithmetic.

    ``int(s / n + 0.5) == (2 s + n) // (2 n)`` for integers ``s >= 0, 1 <= n <= 4``: ``s / n``
    is either exact or at least ``1 / 8`` away from a half, so float rounding never decides.
    """
    views = [src[:, y.index, x.index] for y in ys for x in xs]
    if src.dtype == np.uint8:  # the common case: (a + b + c + d + 2) >> 2 in uint16
        (y0, y1), (x0, x1) = ys, xs
        pairs = src[:, y0.index].astype(np.uint16)  # whole rows: contiguous reads
        pairs += src[:, y1.index]
        acc = pairs[:, :, x0.index] + pairs[:, :, x1.index]
        acc += 2
        acc >>= 2
        out = acc.astype(np.uint8)
        if nodata is None:
            return out
        nd = np.uint8(nodata)
        clash = out == nd if nd != 255 else None  # never 255 from valid pixels (their max)
        if _holds(src, nodata):
            holed = views[0] == nd
            for v in views[1:]:
                holed |= v == nd
            # windows with nodata (a scene's edges, its nodata areas): the valid pixels only
            at = np.nonzero(holed)
            values = np.stack([v[at] for v in views])
            ok = values != nd
            out[at] = _rounded_mean(np.where(ok, values, 0).sum(0, dtype=np.uint16),
                                    ok.sum(0, dtype=np.uint16), src.dtype, nodata)
            if clash is not None:  # those windows are done: nodata is theirs to keep
                clash &= ~holed
        if clash is not None:  # an average of valid pixels equal to nodata
            out[clash] = _replacement(src.dtype, nodata)
        return out
    wide = np.uint16 if src.dtype == np.uint8 else np.uint64  # 2 * 4 * 255 + 4 fits
    total = np.zeros(views[0].shape, dtype=wide)
    count = np.zeros(views[0].shape, dtype=wide)
    for y in ys:
        for x in xs:
            v, ok = _gather(src, y, x, nodata)
            total += np.where(ok, v, 0).astype(wide)
            count += ok
    return _rounded_mean(total, count, src.dtype, nodata)


def _rounded_mean(total: np.ndarray, count: np.ndarray, dtype: np.dtype,
                  nodata: float | None) -> np.ndarray:
    """``int(total / count + 0.5)`` in ``dtype``, as GDAL rounds an integer average.

    Where ``count`` is 0 the result is nodata; an average equal to nodata becomes the next
    value (:func:`_replacement`).
    """
    empty = count == 0
    out = ((2 * total + count) // np.maximum(2 * count, 1)).astype(dtype)
    if nodata is not None:
        out[(out == dtype.type(nodata)) & ~empty] = _replacement(dtype, nodata)
        out[empty] = dtype.type(nodata)
    return out


def _replacement(dtype: np.dtype, nodata: float) -> np.generic:
    """GDAL's stand-in for an average equal to nodata: the next value (the max: the one before)."""
    top = np.iinfo(dtype).max
    return dtype.type(nodata - 1 if nodata == top else nodata + 1)


RESAMPLERS: dict[str, Callable[..., np.ndarray]] = {MODE: mode, AVERAGE: average}


#: Bands x pixels from which a level's rows are computed on two threads (half the bands each).
SPLIT_PIXELS = 2**20
_second: ThreadPoolExecutor | None = None


def _by_band_halves(resample: Callable[..., np.ndarray], src: np.ndarray, rows: AxisWindows,
                    cols: AxisWindows, row0: int, nodata: float | None,
                    threads: int) -> np.ndarray:
    """``resample`` over ``src``, its bands in two halves on two threads where it pays.

    Bands are computed independently and numpy's loops let go of the GIL, so with
    ``threads`` >= 2 a second thread halves the time of a multi-band level (the
    probabilities, which the model's thread computes between batches, its cores otherwise
    idle).
    """
    global _second
    bands = src.shape[0]
    if threads < 2 or bands < 2 or src.size < SPLIT_PIXELS:
        return resample(src, rows, cols, row0, nodata)
    if _second is None:
        _second = ThreadPoolExecutor(1, thread_name_prefix="geovision-overviews")
    half = bands // 2
    first = _second.submit(resample, src[:half], rows, cols, row0, nodata)
    rest = resample(src[half:], rows, cols, row0, nodata)
    return np.concatenate([first.result(), rest])


class LevelReducer:
    """One overview level computed from the rows of the level above, as they arrive."""

    def __init__(self, src_shape: tuple[int, int], dst_shape: tuple[int, int], method: str,
                 nodata: float | None, threads: int = 1) -> None:
        """Prepare the windows of a ``dst_shape`` level over a ``src_shape`` one.

        ``threads``: cores its rows may be computed on (two at most, by band halves).
        """
        self.src_shape, self.dst_shape, self.threads = src_shape, dst_shape, threads
        self.rows = axis_windows(src_shape[0], dst_shape[0])
        self.cols = axis_windows(src_shape[1], dst_shape[1])
        self.resample = RESAMPLERS[method]
        self.nodata = nodata
        self.held: np.ndarray | None = None  # source rows [held_row0, held_row0 + n)
        self.held_row0 = 0
        self.next_row = 0  # next destination row to compute

    def push(self, rows: np.ndarray) -> np.ndarray:
        """Take the next source rows ``(bands, n, width)``; return the destination rows done.

        Returns:
            ``(bands, m, dst width)``, possibly ``m == 0``: the rows whose windows are now
            complete, in order.
        """
        if self.held is None or self.held.shape[1] == 0:
            self.held = rows if self.held is None else np.concatenate([self.held, rows], 1)
        else:
            self.held = np.concatenate([self.held, rows], axis=1)
        have = self.held_row0 + self.held.shape[1]
        end = self.next_row
        while end < self.dst_shape[0] and self.rows.stop[end] <= have:
            end += 1
        if end == self.next_row:
            return np.zeros((rows.shape[0], 0, self.dst_shape[1]), dtype=rows.dtype)
        sel = AxisWindows(*(a[self.next_row:end] for a in (
            self.rows.start, self.rows.stop, self.rows.first, self.rows.last)))
        out = _by_band_halves(self.resample, self.held, sel, self.cols, self.held_row0,
                              self.nodata, self.threads)
        self.next_row = end
        keep = int(self.rows.start[end]) if end < self.dst_shape[0] else have
        drop = keep - self.held_row0
        self.held = self.held[:, drop:].copy() if drop else self.held
        self.held_row0 = keep
        return out

    @property
    def done(self) -> bool:
        """True once every destination row has been returned."""
        return self.next_row >= self.dst_shape[0]


class Pyramid:
    """Every overview level of a raster, fed with its full-resolution rows in order."""

    def __init__(self, height: int, width: int, tile: int, method: str,
                 nodata: float | None, threads: int = 1) -> None:
        """Plan the levels of a ``height x width`` raster (see :func:`overview_shapes`).

        ``threads``: cores the levels may be computed on (see :class:`LevelReducer`).
        """
        self.shapes = overview_shapes(height, width, tile)
        sources = [(height, width), *self.shapes][:len(self.shapes)]
        self.levels = [LevelReducer(s, d, method, nodata, threads)
                       for s, d in zip(sources, self.shapes, strict=True)]

    def push(self, rows: np.ndarray) -> list[np.ndarray]:
        """Take the next full-resolution rows; return the rows each level finished (level 1..)."""
        out = []
        for level in self.levels:
            rows = level.push(rows)
            out.append(rows)
        return out
