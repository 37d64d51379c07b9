"""What prediction rasters say about themselves, and atomic arrays of the scratch folder.

The rasters themselves are written strip by strip into Cloud Optimized GeoTIFFs by
:class:`~geovision.inference.cogwriter.CogWriter`; the functions here describe them (class
names and colours, probability bands and scales) and store a block's arrays.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil

from geovision.atomic import atomic_path
from geovision.formats import CLASS_NODATA, PROB_SCALE, ClassInfo

#: Tile side of every raster written (GeoTIFF blocks and COG tiles).
TILE = 512


def hex_to_rgba(color: str | None, index: int) -> tuple[int, int, int, int]:
    """``#rrggbb`` to an RGBA tuple; a missing or bad colour gets a distinct fallback."""
    if isinstance(color, str) and len(color.lstrip("#")) == 6:
        try:
            v = int(color.lstrip("#"), 16)
            return ((v >> 16) & 255, (v >> 8) & 255, v & 255, 255)
        except ValueError:
            pass
    rng = np.random.default_rng(index)
    r, g, b = (int(x) for x in rng.integers(40, 256, size=3))
    return (r, g, b, 255)


def colormap(classes: Sequence[ClassInfo]) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table of a class raster: each class's colour, nodata transparent."""
    table = {c.id: hex_to_rgba(c.color, c.id) for c in classes}
    table[CLASS_NODATA] = (0, 0, 0, 0)
    return table


def describe_classes(dst: rasterio.io.DatasetWriter, classes: Sequence[ClassInfo]) -> None:
    """Write the class names into a class raster's metadata and set its colour table."""
    dst.update_tags(classes=json.dumps([{"id": c.id, "name": c.name} for c in classes]))
    dst.update_tags(1, **{f"class_{c.id}": c.name for c in classes})
    dst.set_band_description(1, "class")
    dst.write_colormap(1, colormap(classes))


def describe_probabilities(dst: rasterio.io.DatasetWriter, classes: Sequence[ClassInfo],
                           compact_dtype: bool) -> None:
    """Name each probability band after its class; compact bands get scale ``1/254``."""
    for i, c in enumerate(classes, start=1):
        dst.set_band_description(i, f"p_{c.name}")
    if compact_dtype:
        dst.scales = [1.0 / PROB_SCALE] * len(classes)
        dst.offsets = [0.0] * len(classes)
    dst.update_tags(classes=json.dumps([{"id": c.id, "name": c.name} for c in classes]))


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` through a temporary name, so a crash never leaves a partial array."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
