"""Writing predictions: tiled GeoTIFF block by block, then a Cloud Optimized GeoTIFF.

GDAL's COG driver only copies an existing dataset, and writing to it directly buffers the
whole raster; so each output is first written tile by tile into a tiled, lightly compressed
GeoTIFF and converted at the end (:func:`to_cog`), with overviews resampled by MODE for class
rasters and AVERAGE for probabilities.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from geovision.atomic import atomic_path
from geovision.formats import CLASS_NODATA, PROB_SCALE, ClassInfo
from geovision.geo.grid import Grid
from geovision.geo.windows import PixelWindow, intersect
from geovision.inference.layout import Piece

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


def tiled_profile(grid: Grid, *, count: int, dtype: str,
                  nodata: float | None) -> dict[str, Any]:
    """Creation options of the intermediate tiled GeoTIFF on ``grid`` (fast ZSTD, 512 tiles)."""
    return {
        "driver": "GTiff", "height": grid.height, "width": grid.width, "count": count,
        "dtype": dtype, "crs": grid.crs, "transform": grid.transform, "nodata": nodata,
        "tiled": True,
        "blockxsize": TILE, "blockysize": TILE, "compress": "zstd", "zstd_level": 1,
        "interleave": "pixel" if count <= 4 else "band", "bigtiff": "if_safer",
    }


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


def output_tiles(height: int, width: int, tile: int = TILE) -> list[PixelWindow]:
    """The tiles of a raster in row-major order (the last row and column may be short)."""
    return [PixelWindow(r, c, min(tile, height - r), min(tile, width - c))
            for r in range(0, height, tile) for c in range(0, width, tile)]


def piece_finder(pieces: Sequence[Piece]) -> Callable[[PixelWindow], list[Piece]]:
    """A function giving the pieces that overlap a window, found by bisection."""
    by_index = {p.index: p for p in pieces}
    rows = sorted({(p.window.row, p.index[0]) for p in pieces})
    cols = sorted({(p.window.col, p.index[1]) for p in pieces})
    row_starts, col_starts = [r for r, _ in rows], [c for c, _ in cols]

    def find(w: PixelWindow) -> list[Piece]:
        i0 = max(0, bisect.bisect_right(row_starts, w.row) - 1)
        i1 = bisect.bisect_left(row_starts, w.row + w.height)
        j0 = max(0, bisect.bisect_right(col_starts, w.col) - 1)
        j1 = bisect.bisect_left(col_starts, w.col + w.width)
        return [by_index[(rows[i][1], cols[j][1])] for i in range(i0, i1)
                for j in range(j0, j1)]

    return find


def assemble(dst: rasterio.io.DatasetWriter, pieces: Sequence[Piece],
             load: Callable[[Piece], np.ndarray], fill: float) -> None:
    """Write a raster tile by tile from the stored arrays of the pieces that cover it.

    Args:
        dst: the tiled GeoTIFF open for writing.
        pieces: pieces tiling the raster.
        load: the ``(bands, rows, cols)`` array of a piece (memory-mapped: only the part a
            tile needs is read).
        fill: value of pixels no piece covers (none, in a complete run).
    """
    find = piece_finder(pieces)
    for tile in output_tiles(dst.height, dst.width):
        out = np.full((dst.count, tile.height, tile.width), fill, dtype=dst.dtypes[0])
        for piece in find(tile):
            part = intersect(tile, piece.window)
            if part is None:
                continue
            src = load(piece)
            pr, pc = part.row - piece.window.row, part.col - piece.window.col
            tr, tc = part.row - tile.row, part.col - tile.col
            out[:, tr:tr + part.height, tc:tc + part.width] = (
                src[:, pr:pr + part.height, pc:pc + part.width])
        dst.write(out, window=Window(tile.col, tile.row, tile.width, tile.height))


def to_cog(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
           resampling: str) -> None:
    """Convert a tiled GeoTIFF into a Cloud Optimized GeoTIFF, atomically.

    Args:
        src: the tiled GeoTIFF.
        dst: the COG to write; it appears only once complete.
        resampling: overview resampling (``MODE`` or ``NEAREST`` for classes, ``AVERAGE`` for
            probabilities).
    """
    with atomic_path(dst) as tmp:
        rasterio.shutil.copy(
            str(src), str(tmp), driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES",
            BLOCKSIZE=str(TILE), OVERVIEW_RESAMPLING=resampling, NUM_THREADS="ALL_CPUS",
            BIGTIFF="IF_SAFER")


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` through a temporary name, so a crash never leaves a partial array."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
