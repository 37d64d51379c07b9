"""The reference side of a score, window by window on the predictions' grid.

Each source answers one question for a window of the predictions' grid: which class index
(of the score's :class:`~geovision.evaluation.classes.ClassList`) is the reference at each
pixel, ``-1`` where there is none. Nothing reads or rasterizes more than the window:

* vector labels are burned with the pixel-centre rule, as tiling does
  (``rasterio.features.rasterize``, ``all_touched=False``; later features over earlier ones),
  from only the features an STRtree finds in the window;
* raster labels are read onto the window by :func:`geovision.geo.rasterlabels.read_label_window`
  (nearest neighbour with exact transforms, only the part of the label raster under the
  window); their nodata, dropped values and the area outside them have no reference;
* an area of interest is read by :func:`geovision.geo.aoi.read_aoi` and masked per window by
  :func:`geovision.geo.aoi.aoi_mask` (the same pixel-centre rule).
"""

from __future__ import annotations

import warnings

import numpy as np
import rasterio
import shapely
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize

from geovision.evaluation.classes import LABELS, ClassList, raster_class_names
from geovision.formats import IGNORE_INDEX
from geovision.geo.aoi import aoi_mask, read_aoi
from geovision.geo.classes import ClassTable, classes_by_value
from geovision.geo.grid import Grid
from geovision.geo.rasterlabels import label_classes, open_label_raster, read_label_window
from geovision.geo.windows import PixelWindow, window_bounds


def grid_windows(grid: Grid, size: int) -> list[PixelWindow]:
    """Square windows of ``size`` pixels covering a grid in row-major order.

    The last row and column of windows may be short.
    """
    return [PixelWindow(r, c, min(size, grid.height - r), min(size, grid.width - c))
            for r in range(0, grid.height, size) for c in range(0, grid.width, size)]


class VectorReference:
    """Vector labels burned window by window.

    Args:
        geoms: label polygons, already in the grid's CRS, in file order.
        class_index: the class index of each polygon (-1: its pixels are not scored, e.g. a
            value a class map ignores).
        grid: the predictions' grid.
        background: class index of pixels no polygon covers, or None to leave them unscored.
    """

    def __init__(self, geoms: np.ndarray, class_index: np.ndarray, grid: Grid,
                 background: int | None) -> None:
        self.geoms = np.asarray(geoms)
        # burned 0: no polygon; 1: an ignored polygon; 2 + i: class index i
        self.burn_values = np.asarray(class_index, dtype=np.int64) + 2
        self.tree = shapely.STRtree(self.geoms)
        self.grid = grid
        self.background = background

    def read(self, window: PixelWindow) -> np.ndarray:
        """Class index (int32) of every pixel of the window (-1: not scored)."""
        target = self.grid.window(window)
        hits = np.sort(self.tree.query(shapely.box(*window_bounds(window,
                                                                  self.grid.transform))))
        if len(hits):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                burned = rasterize(
                    zip(self.geoms[hits], self.burn_values[hits].tolist(), strict=True),
                    out_shape=target.shape, transform=target.transform, fill=0,
                    all_touched=False, dtype="uint16")
        else:
            burned = np.zeros(target.shape, dtype=np.uint16)
        out = np.maximum(burned.astype(np.int32) - 2, -1)
        if self.background is not None:
            out[burned == 0] = self.background
        return out

    def close(self) -> None:
        """Nothing to release."""


class RasterReference:
    """A raster class map read onto the grid window by window.

    Its values become classes as tiling makes them (:mod:`geovision.geo.rasterlabels`): by a
    class map (the ``--class-map`` file of tiling), else by value (0 background) named by the
    class names geovision writes in a class raster's metadata, by GDAL category names or
    attribute table, or by the value itself (``"3"``).

    Args:
        path: the label raster.
        grid: the predictions' grid.
        classes: the score's class list (label class names are added to it).
        class_map: a class table read from a class-map file, or None.
    """

    def __init__(self, path: str, grid: Grid, classes: ClassList,
                 class_map: ClassTable | None) -> None:
        self.raster = open_label_raster(path)
        self.grid = grid
        self.classes = classes
        self.dropped = 0
        self.named_by = "class_map" if class_map is not None else "values"
        table = class_map
        if table is None:
            with rasterio.open(self.raster.path) as ds:
                tags = raster_class_names(ds)
            if tags:
                table = classes_by_value({v: n for v, n in tags.items() if v != 0})
                self.named_by = "metadata"
            else:
                table = label_classes(self.raster)
                if self.raster.names:
                    self.named_by = "categories"
        self.table = table
        self.index = np.full(256, -1, dtype=np.int32)
        self._learn(table)
        self.ds = rasterio.open(self.raster.path)

    def _learn(self, table: ClassTable) -> None:
        for c in table.classes:
            if self.index[c.id] < 0:
                self.index[c.id] = self.classes.add(c.name, LABELS, c.id)
        self.table = table

    def read(self, window: PixelWindow) -> np.ndarray:
        """Class index (int32) of every pixel of the window (-1: nodata, outside, dropped)."""
        got = read_label_window(self.raster, self.table, self.grid.window(window),
                                fill=IGNORE_INDEX, ds=self.ds)
        self.dropped += got.dropped
        if self.table.by_value:
            seen = np.unique(got.ids)
            fresh = [int(i) for i in seen if i != IGNORE_INDEX and self.index[i] < 0]
            if fresh:
                self._learn(self.table.with_seen(fresh))
        out = self.index[got.ids]
        out[got.ids == IGNORE_INDEX] = -1
        return out

    def close(self) -> None:
        """Close the label raster."""
        self.ds.close()


class AoiMask:
    """An area of interest on the predictions' grid: True where a pixel's centre is inside.

    Args:
        path: polygons in any OGR format and CRS.
        grid: the predictions' grid.
    """

    def __init__(self, path: str, grid: Grid) -> None:
        self.area = read_aoi(path)
        self.geometry = self.area.in_crs(grid.crs)
        self.grid = grid

    def read(self, window: PixelWindow) -> np.ndarray:
        """True where a pixel's centre lies inside the area of interest."""
        return aoi_mask(self.geometry, self.grid.window(window))
