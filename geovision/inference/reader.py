"""Reading a block of a scene: selected bands, validity, reflect padding, normalization."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from geovision.geo.raster import valid_mask
from geovision.geo.windows import PixelWindow, reflect_index, take_runs


def source_span(start: int, size: int, length: int) -> tuple[np.ndarray, int, int]:
    """Which scene pixels a run ``[start, start + size)`` needs, reflected into the scene.

    Returns:
        ``(index, lo, hi)``: the reflected scene index of each pixel of the run, and the scene
        range ``[lo, hi)`` to read so that ``data[index - lo]`` gives the run.
    """
    index = reflect_index(np.arange(start, start + size), length)
    return index, int(index.min()), int(index.max()) + 1


def read_region(ds: rasterio.io.DatasetReader, bands: Sequence[int],
                region: PixelWindow) -> tuple[np.ndarray, np.ndarray]:
    """Read a region of the scene, mirroring pixels where the region passes the scene's edges.

    Args:
        ds: the open scene.
        bands: 1-based bands, in the model's order.
        region: the pixels wanted, in scene coordinates (may start before 0 or end past the
            scene).

    Returns:
        ``(data, valid)``: ``(bands, rows, cols)`` in the scene's dtype and a boolean
        ``(rows, cols)`` mask of pixels holding data (nodata, internal masks, alpha and NaN are
        invalid).
    """
    r_idx, r0, r1 = source_span(region.row, region.height, ds.height)
    c_idx, c0, c1 = source_span(region.col, region.width, ds.width)
    window = Window(c0, r0, c1 - c0, r1 - r0)
    data = ds.read(list(bands), window=window)
    valid = valid_mask(ds, bands, window, data)
    if not (r0 == region.row and r1 - r0 == region.height):  # mirrored rows
        data, valid = take_runs(data, r_idx - r0, 1), take_runs(valid, r_idx - r0, 0)
    if not (c0 == region.col and c1 - c0 == region.width):  # mirrored columns
        data, valid = take_runs(data, c_idx - c0, 2), take_runs(valid, c_idx - c0, 1)
    return data, valid


def normalize(data: np.ndarray, valid: np.ndarray, mean: Sequence[float],
              std: Sequence[float]) -> np.ndarray:
    """``(x - mean) / std`` per band in float32, with invalid pixels set to 0 (the band mean).

    Filling nodata with the mean keeps arbitrary nodata values (0, -9999, NaN) from leaking
    into the predictions of the valid pixels around them.
    """
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    out = np.subtract(data, m, dtype=np.float32)  # the cast and the subtraction in one pass
    out /= s
    if not valid.all():
        np.copyto(out, 0.0, where=~valid)
    return out
