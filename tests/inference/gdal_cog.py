"""The reference the streamed outputs are compared with: GDAL's COG driver.

A raster written whole into a tiled GeoTIFF, then converted by ``gdal_translate -of COG``
(through rasterio) with the outputs' storage: DEFLATE (the floating-point predictor for floats,
none for integers), 512 tiles, overviews resampled by MODE (classes) or AVERAGE (probabilities).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil

TILE = 512


def tiled_profile(*, height: int, width: int, count: int, dtype: str, crs: Any,
                  transform: Any, nodata: float | None) -> dict[str, Any]:
    """Creation options of a tiled, lightly compressed GeoTIFF (the COG driver's source)."""
    return {"driver": "GTiff", "height": height, "width": width, "count": count,
            "dtype": dtype, "crs": crs, "transform": transform, "nodata": nodata,
            "tiled": True, "blockxsize": TILE, "blockysize": TILE, "compress": "zstd",
            "zstd_level": 1, "interleave": "pixel" if count <= 4 else "band",
            "bigtiff": "if_safer"}


def to_cog(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
           resampling: str, level: int = 6) -> None:
    """Convert a tiled GeoTIFF into a COG with GDAL's COG driver (DEFLATE ``level``)."""
    with rasterio.open(src) as ds:
        floating = np.issubdtype(np.dtype(ds.dtypes[0]), np.floating)
    rasterio.shutil.copy(str(src), str(dst), driver="COG", COMPRESS="DEFLATE",
                         PREDICTOR="YES" if floating else "NO", LEVEL=str(level),
                         BLOCKSIZE=str(TILE),
                         OVERVIEW_RESAMPLING=resampling, NUM_THREADS="ALL_CPUS",
                         BIGTIFF="IF_SAFER")


def cog_levels(path: str | os.PathLike[str]) -> list[np.ndarray]:
    """Every level of a raster, full resolution first."""
    with rasterio.open(path) as ds:
        out, n = [ds.read()], len(ds.overviews(1))
    for i in range(n):
        with rasterio.open(path, OVERVIEW_LEVEL=i) as ovr:
            out.append(ovr.read())
    return out
