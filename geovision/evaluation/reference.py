"""The reference side of a score, window by window on the predictions' grid.

Each source answers one question for a window of the predictions' grid: which class index
(of the score's :class:`~geovision.evaluation.classes.ClassList`) is the reference at each
pixel, ``-1`` where there is none. Nothing reads or rasterizes more than the window:

* vector labels are burned with the pixel-centre rule, as tiling does
  (``rasterio.features.rasterize``, ``all_touched=False``; later features over earlier ones),
  from only the features an STRtree finds in the window;
* raster labels are reprojected with nearest-neighbour onto the window through a GDAL warped
  view (``WarpedVRT``), which warps only the window read; their nodata (or the area outside
  them) has no reference;
* an area of interest is burned the same way as vector labels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
import shapely
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geovision.errors import InputError, InputFileError
from geovision.evaluation.classes import LABELS, ClassList, ValueLookup
from geovision.geo.vector import to_crs
from geovision.geo.windows import PixelWindow, window_bounds


@dataclass(frozen=True)
class Grid:
    """The pixel grid a score is computed on (the predictions'): CRS, affine and size."""

    crs: Any
    transform: Affine
    width: int
    height: int

    def windows(self, size: int) -> list[PixelWindow]:
        """Square windows of ``size`` pixels covering the grid in row-major order.

        The last row and column of windows may be short.
        """
        return [PixelWindow(r, c, min(size, self.height - r), min(size, self.width - c))
                for r in range(0, self.height, size) for c in range(0, self.width, size)]


def _burn(geoms: np.ndarray, values: np.ndarray, window: PixelWindow, grid: Grid) -> np.ndarray:
    """``values`` burned (pixel-centre rule) on a window, 0 where no geometry covers it."""
    shape = (window.height, window.width)
    if len(geoms) == 0:
        return np.zeros(shape, dtype=np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterize(zip(geoms, values.tolist(), strict=True), out_shape=shape,
                         transform=window.transform(grid.transform), fill=0,
                         all_touched=False, dtype="uint16")


class VectorReference:
    """Vector labels burned window by window.

    Args:
        geoms: label polygons, already in the grid's CRS, in file order.
        class_index: the class index of each polygon.
        grid: the predictions' grid.
        background: class index of pixels no polygon covers, or None to leave them unscored.
    """

    def __init__(self, geoms: np.ndarray, class_index: np.ndarray, grid: Grid,
                 background: int | None) -> None:
        self.geoms = np.asarray(geoms)
        self.burn_values = np.asarray(class_index, dtype=np.int64) + 1
        self.tree = shapely.STRtree(self.geoms)
        self.grid = grid
        self.background = background

    def read(self, window: PixelWindow) -> np.ndarray:
        """Class index of every pixel of the window (-1: not scored)."""
        hits = np.sort(self.tree.query(shapely.box(*window_bounds(window,
                                                                  self.grid.transform))))
        burned = _burn(self.geoms[hits], self.burn_values[hits], window, self.grid)
        out = burned.astype(np.int32) - 1
        if self.background is not None:
            out[burned == 0] = self.background
        return out

    def close(self) -> None:
        """Nothing to release."""


class RasterReference:
    """A raster class map, reprojected with nearest-neighbour onto the grid window by window.

    Values are named by ``names`` (a class map or the raster's own metadata) or, without it,
    by the value itself (``"3"``); values without a name are left out and counted.

    Args:
        path: the label raster.
        grid: the predictions' grid.
        classes: the score's class list (label names are added to it).
        names: ``{value: name}``, or None to name classes by value.
    """

    def __init__(self, path: str, grid: Grid, classes: ClassList,
                 names: dict[int, str] | None) -> None:
        self.path = path
        self.classes = classes
        self.names = names
        self.unnamed: dict[int, int] = {}
        self.src = rasterio.open(path)
        if self.src.crs is None:
            self.src.close()
            raise InputError(f"{path}: raster labels have no CRS; assign one (gdal_edit.py "
                             "-a_srs EPSG:XXXX) so they can be placed on the predictions")
        if not np.issubdtype(np.dtype(self.src.dtypes[0]), np.integer):
            self.src.close()
            raise InputError(f"{path}: raster labels are {self.src.dtypes[0]}; a class map "
                             "holds whole-number class values")
        same = (self.src.crs == grid.crs and self.src.transform == grid.transform
                and self.src.width == grid.width and self.src.height == grid.height)
        self.vrt: Any = None
        if not same:
            no_mask = (self.src.nodata is None
                       and self.src.mask_flag_enums[0] == [MaskFlags.all_valid])
            self.vrt = WarpedVRT(self.src, crs=grid.crs, transform=grid.transform,
                                 width=grid.width, height=grid.height,
                                 resampling=Resampling.nearest, add_alpha=no_mask)
        self.reader = self.vrt if self.vrt is not None else self.src
        self.map: dict[int, int] = {}
        if names is not None:
            for value in sorted(names):
                self.map[value] = classes.add(names[value], LABELS, value)
        self.lookup = ValueLookup.of(self.map)

    def read(self, window: PixelWindow) -> np.ndarray:
        """Class index of every pixel of the window (-1: nodata, outside, or unnamed)."""
        win = Window(window.col, window.row, window.width, window.height)
        data = self.reader.read(1, window=win)
        valid = self.reader.read_masks(1, window=win) > 0
        if self.names is None:
            new = [int(v) for v in np.unique(data[valid]) if int(v) not in self.map]
            for value in new:
                self.map[value] = self.classes.add(str(value), LABELS, value)
            if new:
                self.lookup = ValueLookup.of(self.map)
        index = self.lookup(data)
        unknown = valid & (index < 0)
        if unknown.any():
            values, counts = np.unique(data[unknown], return_counts=True)
            for v, c in zip(values.tolist(), counts.tolist(), strict=True):
                self.unnamed[int(v)] = self.unnamed.get(int(v), 0) + int(c)
        index[~valid] = -1
        return index

    def close(self) -> None:
        """Close the warped view and the file."""
        if self.vrt is not None:
            self.vrt.close()
        self.src.close()


def read_polygons(path: str, what: str, flag: str, layer: str | None = None
                  ) -> gpd.GeoDataFrame:
    """Read the polygons of a vector file (its other geometries are refused).

    Raises:
        InputFileError: the file is missing or not a vector file OGR reads.
        InputError: it has no CRS or no polygon.
    """
    try:
        frame = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:
        raise InputFileError(f"{path}: {what} is not a vector file OGR can read "
                             f"({str(exc).splitlines()[0]}) ({flag})") from exc
    if frame.crs is None:
        raise InputError(f"{path}: {what} has no CRS; assign one (ogr2ogr -a_srs EPSG:XXXX) "
                         f"({flag})")
    geoms = np.asarray(frame.geometry.values)
    ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    ok &= np.isin(shapely.get_type_id(geoms), [3, 6])
    if not ok.any():
        raise InputError(f"{path}: {what} holds no polygon ({flag})")
    return frame[ok]


class AoiMask:
    """An area of interest burned window by window: True where a pixel's centre is inside.

    Args:
        path: polygons in any OGR format and CRS.
        grid: the predictions' grid.
    """

    def __init__(self, path: str, grid: Grid) -> None:
        frame = to_crs(read_polygons(path, "the area of interest", "--aoi"), grid.crs)
        geoms = np.asarray(frame.geometry.values)
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            geoms = geoms.copy()
            geoms[bad] = shapely.make_valid(geoms[bad])
        self.geoms = geoms
        self.tree = shapely.STRtree(geoms)
        self.grid = grid
        self.path = path

    def read(self, window: PixelWindow) -> np.ndarray:
        """True where a pixel's centre lies inside the area of interest."""
        hits = np.sort(self.tree.query(shapely.box(*window_bounds(window,
                                                                  self.grid.transform))))
        return _burn(self.geoms[hits], np.ones(len(hits), dtype=np.int64), window,
                     self.grid) > 0

    def union(self) -> Any:
        """The area of interest as one geometry, in the grid's CRS."""
        return shapely.union_all(self.geoms)
