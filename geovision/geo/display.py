"""Showing a raster's bands as an image: which bands are red, green and blue, and the stretch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The stretch maps these percentiles of a band's valid values to 0 and 1.
PERCENTILES = (2.0, 98.0)


def rgb_by_name(names: Sequence[str | None]) -> list[int] | None:
    """0-based indices of the bands named red, green and blue (any case), or None."""
    lowered = [(n or "").lower() for n in names]
    if all(c in lowered for c in ("red", "green", "blue")):
        return [lowered.index(c) for c in ("red", "green", "blue")]
    return None


def stretch(band: np.ndarray, valid: np.ndarray | None = None, *,
            eps: float = 1e-9) -> np.ndarray:
    """A band scaled to 0..1 between the percentiles :data:`PERCENTILES` of its valid values.

    ``(v - p2) / max(p98 - p2, eps)``, clipped to 0..1; pixels that are not ``valid`` (and
    every pixel of a band without valid values) are 0. The result has the band's float type.

    Args:
        band: a 2-D array of one band's values.
        valid: where the band holds data (None: everywhere).
        eps: smallest spread, so a constant band does not divide by zero.
    """
    values = band if valid is None else band[valid]
    if values.size == 0:
        return np.zeros(band.shape, dtype=np.result_type(band.dtype, np.float32))
    lo, hi = (np.percentile(values, q) for q in PERCENTILES)  # scalar q keeps float32
    out = np.clip((band - lo) / max(hi - lo, eps), 0, 1)
    if valid is not None:
        out[~valid] = 0
    return np.asarray(out)
