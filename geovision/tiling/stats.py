"""Per-band statistics that merge exactly across tiles (count, mean, M2, min, max)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Pixels per band below which sums of squares of 16-bit integers stay under 2**53, so that
#: float64 holds every partial sum exactly (65535**2 * n < 2**53); also keeps 8-bit sums
#: within 32-bit integers.
_EXACT_PIXELS = 2**53 // 65535**2


#: Values per float32 partial sum of 8-bit values: squares of at most 255**2 summed over this
#: many stay below 2**24, so float32 adds them exactly, in any order.
_F32_RUN = 2**24 // 255**2


def _run_length(n: int) -> int:
    """The longest run of at most :data:`_F32_RUN` values that divides ``n`` (0: under 64)."""
    for run in range(min(n, _F32_RUN), 63, -1):
        if n % run == 0:
            return run
    return 0


def _exact_sums(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row sum and sum of squares of a 2-D array of integers of up to 16 bits, exactly.

    Every partial sum is an integer below 2**53, so the result does not depend on the order
    of the additions: it equals a float64 ``sum`` and ``einsum`` of the same values. 8-bit
    rows whose length ``n`` splits into runs of ``r`` values (:func:`_run_length`) are summed
    run by run in float32 (``r * 255**2 < 2**24``: exact), the runs' sums then in float64:
    one conversion feeds both sums, faster than integer sums (numpy widens through buffers).
    Other 8-bit rows are summed in integers: the sum in 32 bits (``255 * n < 2**31``), the
    squares as 16-bit integers (``255**2 < 2**16``) summed in 32 bits when
    ``n * 255**2 < 2**32`` and in 64 bits otherwise; wider values in float64.

    Returns:
        (sums, sums of squares), float64, one per row.
    """
    if flat.dtype.itemsize == 1:
        rows, n = flat.shape
        run = _run_length(n)
        if run:
            runs = np.empty((rows * n // run, run), np.float32)
            np.copyto(runs, flat.reshape(-1, run))
            total = np.einsum("ij->i", runs).reshape(rows, -1).sum(axis=1, dtype=np.float64)
            squares = np.einsum("ij,ij->i", runs, runs).reshape(rows, -1).sum(
                axis=1, dtype=np.float64)
            return total, squares
        signed = flat.dtype.kind == "i"
        total = flat.sum(axis=1, dtype=np.int32 if signed else np.uint32)
        wide = np.int16 if signed else np.uint16
        sq16 = flat.astype(wide)
        np.multiply(sq16, sq16, out=sq16)
        top = 128**2 if signed else 255**2
        acc = np.uint32 if n * top < 2**32 else np.uint64
        sq = sq16.view(np.uint16).sum(axis=1, dtype=acc)
        return total.astype(np.float64), sq.astype(np.float64)
    values = flat.astype(np.float64)
    total = values.sum(axis=1)
    values *= values
    return total, values.sum(axis=1)


def tile_stats(tiles: np.ndarray, valid: list[np.ndarray] | None = None,
               group: int = 4) -> dict[str, np.ndarray]:
    """:meth:`BandStats.of` of every tile of a ``(tiles, bands, rows, cols)`` array, at once.

    Tiles valid everywhere (``valid`` None, or a tile's mask all True) with integer pixels of
    up to 16 bits are summed ``group`` tiles per numpy call (rows are independent and every
    sum exact, so each tile's figures are those :meth:`BandStats.of` gives); the others go
    through :meth:`BandStats.of` one by one.

    Args:
        tiles: the pixels, one tile per item.
        valid: each tile's ``(rows, cols)`` valid mask; None: every pixel is valid.
        group: tiles per call of the vectorized sums.

    Returns:
        ``count``, ``mean``, ``m2``, ``min``, ``max``, each ``(tiles, bands)``.
    """
    n, bands = tiles.shape[:2]
    px = int(np.prod(tiles.shape[2:], dtype=np.int64))
    out = {"count": np.zeros((n, bands), np.int64), "mean": np.zeros((n, bands)),
           "m2": np.zeros((n, bands)), "min": np.zeros((n, bands)), "max": np.zeros((n, bands))}
    full = np.ones(n, bool) if valid is None else np.array([v.all() for v in valid], dtype=bool)
    fast = tiles.dtype.kind in "iub" and tiles.dtype.itemsize <= 2 and px < _EXACT_PIXELS
    if fast:
        idx = np.flatnonzero(full)
        for k in range(0, len(idx), group):
            sel = idx[k:k + group]
            run = sel[-1] - sel[0] + 1 == len(sel)  # consecutive tiles: a view, no copy
            flat = (tiles[sel[0]:sel[-1] + 1] if run else tiles[sel]).reshape(len(sel) * bands,
                                                                                px)
            total, squares = _exact_sums(flat)
            mean = total / px
            out["count"][sel] = px
            out["mean"][sel] = mean.reshape(-1, bands)
            out["m2"][sel] = np.maximum(squares - total * mean, 0.0).reshape(-1, bands)
            out["min"][sel] = flat.min(axis=1).astype(np.float64).reshape(-1, bands)
            out["max"][sel] = flat.max(axis=1).astype(np.float64).reshape(-1, bands)
    for i in range(n) if not fast else np.flatnonzero(~full):
        mask = np.ones(tiles.shape[2:], bool) if valid is None else valid[i]
        st = BandStats.of(tiles[i], mask)
        for name in out:
            out[name][i] = getattr(st, name)
    return out


def merged_moments(n1: Any, mean1: Any, m2_1: Any, n2: Any, mean2: Any, m2_2: Any,
                   n: Any) -> tuple[Any, Any]:
    """Mean and sum of squared deviations (M2) of two sets of values together.

    Chan et al.'s pairwise update, on arrays or Python numbers alike (the same operations in
    the same order, so the same bits); ``n``: ``n1 + n2``, or any non-zero stand-in where
    that is 0 (the caller decides what an empty set gives).
    """
    delta = mean2 - mean1
    return mean1 + delta * n2 / n, m2_1 + m2_2 + delta**2 * n1 * n2 / n


@dataclass
class BandStats:
    """Running per-band moments over valid pixels; ``merge`` combines two (Chan et al.)."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def empty(cls, bands: int) -> BandStats:
        """Statistics of no pixel."""
        return cls(
            count=np.zeros(bands, dtype=np.int64),
            mean=np.zeros(bands),
            m2=np.zeros(bands),
            min=np.full(bands, np.inf),
            max=np.full(bands, -np.inf),
        )

    @classmethod
    def of(cls, pixels: np.ndarray, valid: np.ndarray) -> BandStats:
        """Statistics of a (bands, rows, cols) array over the pixels where ``valid`` holds.

        Integer pixels of up to 32 bits are summed exactly in float64 (one pass: sum and sum of
        squares); float pixels use two passes, which keeps M2 accurate far from zero.
        """
        bands = pixels.shape[0]
        if valid.all():
            flat = pixels.reshape(bands, -1)
        else:
            if not valid.any():
                return cls.empty(bands)
            if pixels.dtype.kind in "iu" and pixels.dtype.itemsize <= 2 and \
                    valid.size < _EXACT_PIXELS:
                return cls._of_masked(pixels.reshape(bands, -1), valid.reshape(-1))
            flat = pixels[:, valid]
        n = flat.shape[1]
        if flat.dtype.kind in "iub" and flat.dtype.itemsize <= 2 and n < _EXACT_PIXELS:
            total, squares = _exact_sums(flat)
            mean = total / n
            m2 = np.maximum(squares - total * mean, 0.0)
            return cls(
                count=np.full(bands, n, dtype=np.int64), mean=mean, m2=m2,
                min=flat.min(axis=1).astype(np.float64), max=flat.max(axis=1).astype(np.float64),
            )
        values = flat.astype(np.float64)
        total = values.sum(axis=1)
        mean = total / n
        if flat.dtype.kind in "iub" and flat.dtype.itemsize <= 2:
            m2 = np.maximum(np.einsum("ij,ij->i", values, values) - total * mean, 0.0)
        else:
            centred = values - mean[:, None]
            m2 = np.einsum("ij,ij->i", centred, centred)
        return cls(
            count=np.full(bands, n, dtype=np.int64), mean=mean, m2=m2,
            min=flat.min(axis=1).astype(np.float64), max=flat.max(axis=1).astype(np.float64),
        )

    @classmethod
    def _of_masked(cls, flat: np.ndarray, valid: np.ndarray) -> BandStats:
        """:meth:`of` integer ``(bands, pixels)`` over ``valid``, without gathering them.

        In unsigned integers (signed ones with their sign bit flipped: the same order),
        invalid pixels are set to 0 for the sums and the maximum and to the largest value
        for the minimum, so whole-row reductions give the figures of the valid pixels (the
        same integers: the same figures as gathering them).
        """
        n = int(np.count_nonzero(valid))
        utype = np.dtype(f"u{flat.dtype.itemsize}")
        sign = utype.type(1 << (8 * utype.itemsize - 1) if flat.dtype.kind == "i" else 0)
        u = flat.view(utype) ^ sign if sign else flat.view(utype)
        keep = (valid != 0).astype(utype)
        low = u * keep  # invalid: 0
        high = u | (1 - keep) * np.iinfo(utype).max  # invalid: the largest value
        if sign:
            zeroed = (low ^ sign).view(flat.dtype) * keep.view(flat.dtype)
        else:
            zeroed = low
        total, squares = _exact_sums(zeroed)
        mean = total / n
        lo = (high.min(axis=1) ^ sign).view(flat.dtype)
        hi = (low.max(axis=1) ^ sign).view(flat.dtype)
        return cls(
            count=np.full(len(flat), n, dtype=np.int64), mean=mean,
            m2=np.maximum(squares - total * mean, 0.0),
            min=lo.astype(np.float64), max=hi.astype(np.float64),
        )

    def merge(self, other: BandStats) -> BandStats:
        """The statistics of both pixel sets together."""
        n = self.count + other.count
        mean, m2 = merged_moments(self.count, self.mean, self.m2, other.count, other.mean,
                                  other.m2, np.where(n > 0, n, 1))
        return BandStats(n, np.where(n > 0, mean, 0.0), np.where(n > 0, m2, 0.0),
                         np.minimum(self.min, other.min), np.maximum(self.max, other.max))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays, for saving."""
        return {"count": self.count, "mean": self.mean, "m2": self.m2,
                "min": self.min, "max": self.max}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> BandStats:
        """Inverse of :meth:`to_arrays`."""
        return cls(np.asarray(arrays["count"]), np.asarray(arrays["mean"]),
                   np.asarray(arrays["m2"]), np.asarray(arrays["min"]),
                   np.asarray(arrays["max"]))

    def describe(self) -> dict:
        """The ``stats`` record of the tile dataset format (population std)."""
        n = np.where(self.count > 0, self.count, 1)
        std = np.sqrt(self.m2 / n)
        return {
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in std],
            "min": [float(v) if np.isfinite(v) else None for v in self.min],
            "max": [float(v) if np.isfinite(v) else None for v in self.max],
            "pixels": int(self.count.max()) if len(self.count) else 0,
        }
