"""Band files stacked onto one grid as a GDAL VRT, so a multi-file scene opens like one file.

A scene whose bands live in separate files (STAC assets, Sentinel-2 or Landsat band files),
possibly at different resolutions, becomes a VRT: an XML text with one band per input band,
each a source that GDAL resamples onto the common grid as it reads (``resampling`` attribute:
GDAL's own nearest, bilinear, cubic or average). GDAL opens VRT XML given as the file name, so
``rasterio.open(scene.path)`` works unchanged here and in any Dask worker, windows read only
the source blocks they need, and band descriptions carry the band names.

Measured (GDAL 3.10, see ``tests/geo/test_scenes.py`` and ``benchmarks/bench_vrt.py``):

- for nearest, bilinear and average, the VRT's pixels equal ``rasterio.warp.reproject``
  (gdalwarp) onto the same grid for 2x up- or down-sampling, except that bilinear gives a
  value to the one-pixel fringe along a nodata edge where the warper gives nodata, and
  averages may round a half the other way; every method equals rasterio's resampled
  ``read(out_shape=...)`` (GDAL's RasterIO, which a VRT reads through) exactly;
- a window read equals the same window of a full read (tiles and inference windows agree),
  except for average at a non-integer ratio of resolutions (GDAL weighs partial pixels at
  window edges; warned). An upsampled band is read with nearest when average is asked:
  at integer ratios that is what GDAL's average gives, and average itself differs between
  windows when upsampling;
- sources are ``SimpleSource`` elements, which read as fast as the files themselves (64
  windows of 256 x 256 from four 2048-pixel band files, one at half resolution: 0.15-0.16 s
  CPU through the VRT, 0.17 s reading the four files one by one, 0.15 s from one 4-band
  GeoTIFF). Only a band whose nodata value is mapped to the scene's takes a
  ``ComplexSource`` (about 5x the CPU: GDAL converts through a float buffer).
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioIOError

from geovision.errors import InputError, InputFileError
from geovision.geo.grid import Grid
from geovision.options.scenes import RESAMPLING

log = logging.getLogger(__name__)

#: numpy dtype name -> GDAL data type name.
GDAL_TYPES = {
    "uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
    "uint32": "UInt32", "int32": "Int32", "uint64": "UInt64", "int64": "Int64",
    "float32": "Float32", "float64": "Float64",
}


@dataclass(frozen=True)
class BandFile:
    """One band of a multi-file scene, described from its file's header.

    Attributes:
        name: the band's name (a STAC asset name, a file stem).
        path: GDAL path of the file.
        band: 1-based band in that file.
        grid: the file's grid.
        dtype: numpy dtype name.
        nodata: the band's nodata value, or None.
        block: (rows, cols) of the band's blocks.
    """

    name: str
    path: str
    band: int
    grid: Grid
    dtype: str
    nodata: float | None
    block: tuple[int, int]


def band_files(name: str, path: str) -> list[BandFile]:
    """The bands of one file, named ``name`` (``name.1``, ``name.2``, ... when several).

    Raises:
        InputFileError: GDAL cannot open the file.
        InputError: it has no CRS or a rotated grid.
    """
    try:
        with rasterio.open(path) as ds:
            grid = Grid.of(ds)
            count, dtypes, nodatas = ds.count, ds.dtypes, ds.nodatavals
            blocks = ds.block_shapes
    except RasterioIOError as exc:
        raise InputFileError(f"{path}: not a readable raster ({str(exc).strip().splitlines()[0]})"
                             ) from exc
    if grid.crs is None:
        raise InputError(f"{path}: raster has no CRS; assign one first "
                         "(gdal_edit.py -a_srs EPSG:XXXX)")
    t = grid.transform
    if t.b or t.d or t.is_identity or t.e >= 0:
        raise InputError(f"{path}: rotated, sheared, south-up or missing geotransform "
                         f"{tuple(t)[:6]}; warp it to a north-up grid first (gdalwarp)")
    return [
        BandFile(name=name if count == 1 else f"{name}.{b}", path=path, band=b, grid=grid,
                 dtype=dtypes[b - 1], nodata=nodatas[b - 1],
                 block=(int(blocks[b - 1][0]), int(blocks[b - 1][1])))
        for b in range(1, count + 1)
    ]


def stack_grid(bands: Sequence[BandFile], resolution: float | Sequence[float] | None = None,
               *, what: str = "scene") -> Grid:
    """The grid a stack of bands is read on.

    The union of the bands' extents, with its origin at the union's top-left corner, at
    ``resolution`` (x, y in the bands' CRS units; one number for square pixels), by default
    the finest of the bands' (the smallest pixel area). Bands at that resolution whose edges
    fall on the grid's are read without resampling.

    Raises:
        InputError: the bands are in different CRSs, or the resolution is not positive.
    """
    if not bands:
        raise InputError(f"{what}: no band to read")
    crs = bands[0].grid.crs
    other = [b for b in bands if b.grid.crs != crs]
    if other:
        listing = ", ".join(f"{b.name}: {b.grid.crs.to_string()}" for b in (bands[0], *other))
        raise InputError(f"{what}: bands are in different CRSs ({listing}); warp them to one "
                         "CRS first (gdalwarp -t_srs)")
    if resolution is None:
        finest = min(bands, key=lambda b: b.grid.res[0] * b.grid.res[1])
        rx, ry = finest.grid.res
    else:
        rx, ry = ((float(resolution), float(resolution)) if isinstance(resolution, (int, float))
                  else (float(resolution[0]), float(resolution[1])))
        if not (rx > 0 and ry > 0):
            raise InputError(f"--resolution: {resolution} must be positive (CRS units)")
    lefts, bottoms, rights, tops = zip(*(b.grid.bounds for b in bands), strict=True)
    left, bottom, right, top = min(lefts), min(bottoms), max(rights), max(tops)
    width = max(1, math.ceil((right - left) / rx - 1e-6))
    height = max(1, math.ceil((top - bottom) / ry - 1e-6))
    return Grid(crs=crs, transform=Affine(rx, 0.0, left, 0.0, -ry, top), width=width,
                height=height)


def stack_vrt(bands: Sequence[BandFile], grid: Grid, resampling: str = "nearest",
              *, what: str = "scene") -> str:
    """VRT XML reading ``bands`` in order on ``grid``, each resampled with ``resampling``.

    The VRT's bands have one data type (the smallest that holds every band's values) and one
    nodata value (the first band's that has one), so that a pixel's validity reads the same
    in every band; a band whose own nodata differs has its nodata pixels mapped to it (and a
    band without nodata takes it too). Pixels of the grid that a band does not cover are
    nodata (0 without one). Band descriptions are the bands' names.

    Raises:
        InputError: an unknown resampling, or a data type GDAL cannot stack.
    """
    if resampling not in RESAMPLING:
        raise InputError(f"--resampling: '{resampling}' is not a choice; choose one of "
                         f"{', '.join(RESAMPLING)}")
    dtype = str(np.result_type(*[np.dtype(b.dtype) for b in bands]))
    if dtype not in GDAL_TYPES:
        raise InputError(f"{what}: bands of types {sorted({b.dtype for b in bands})} cannot "
                         "be stacked (complex numbers?); convert them first")
    nodata = next((b.nodata for b in bands if b.nodata is not None), None)
    root = ET.Element("VRTDataset", rasterXSize=str(grid.width), rasterYSize=str(grid.height))
    ET.SubElement(root, "SRS").text = grid.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(float(v)) for v in grid.transform.to_gdal())
    gx, gy = grid.res
    for i, b in enumerate(bands, start=1):
        node = ET.SubElement(root, "VRTRasterBand", dataType=GDAL_TYPES[dtype], band=str(i))
        ET.SubElement(node, "Description").text = b.name
        if nodata is not None:
            ET.SubElement(node, "NoDataValue").text = _number(nodata)
        bx, by = b.grid.res
        resampled = not (math.isclose(bx, gx, rel_tol=1e-9) and math.isclose(by, gy,
                                                                             rel_tol=1e-9))
        remap = b.nodata is not None and nodata is not None and not _same(b.nodata, nodata)
        # Bands on the grid need no resampling. Upsampled bands are not averaged: at integer
        # ratios GDAL's average of a coarser band equals nearest, and nearest reads the same
        # in every window (average does not).
        method = "nearest" if not resampled or (resampling == "average" and bx > gx) else (
            resampling)
        src = ET.SubElement(node, "ComplexSource" if remap else "SimpleSource",
                            resampling=method)
        ET.SubElement(src, "SourceFilename", relativeToVRT="0").text = b.path
        ET.SubElement(src, "SourceBand").text = str(b.band)
        ET.SubElement(src, "SourceProperties", RasterXSize=str(b.grid.width),
                      RasterYSize=str(b.grid.height), DataType=GDAL_TYPES.get(b.dtype, "Byte"),
                      BlockXSize=str(b.block[1]), BlockYSize=str(b.block[0]))
        ET.SubElement(src, "SrcRect", xOff="0", yOff="0", xSize=str(b.grid.width),
                      ySize=str(b.grid.height))
        left, _, _, top = b.grid.bounds
        ET.SubElement(src, "DstRect", xOff=_number((left - grid.transform.c) / gx),
                      yOff=_number((grid.transform.f - top) / gy),
                      xSize=_number(b.grid.width * bx / gx),
                      ySize=_number(b.grid.height * by / gy))
        if remap:
            ET.SubElement(src, "NODATA").text = _number(b.nodata)  # type: ignore[arg-type]
        if resampled and method == "average" and not _whole(gx / bx):
            log.warning("%s: band %s is averaged at a ratio of %.4g between resolutions; "
                        "with a non-integer ratio GDAL's average differs slightly between "
                        "windows (use an integer ratio or bilinear)", what, b.name, gx / bx)
    return ET.tostring(root, encoding="unicode")


def _number(value: float) -> str:
    f = float(value)
    if math.isnan(f):
        return "nan"
    return str(int(f)) if f.is_integer() and abs(f) < 2**53 else repr(f)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-9
