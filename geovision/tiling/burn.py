"""Labels burned once per block: vector features that meet the block, or a label raster.

A block is any rectangle of a source's pixels (a strip or a group of tiles, read in one go).
:class:`SourceLabels` holds the features of one source in its CRS with an STRtree over them;
:meth:`SourceLabels.select` queries the tree with the block's bounds and returns the features
whose envelope meets it, **in file order** (later features are burned over earlier ones, so
the tree's own order is sorted away), as plain picklable values (:class:`BlockLabels`);
:func:`burn` rasterizes them on the block's own grid.

The pixel-centre rule makes the result of :func:`burn` on a block equal, pixel for pixel, to
the same pixels of a rasterize over the whole source: a pixel takes the class of the last
feature (in file order) whose polygon holds its centre. Features are converted to GeoJSON-like
mappings once per source (:func:`geojson`, from shapely's ragged coordinate arrays), not once
per block; when the blocks to come are known (:meth:`SourceLabels.expect`), a feature's
mapping is dropped by the last block that takes it, so a run frees them block by block on its
worker threads rather than all at once at its end. Pixels no feature covers take ``fill``
(background, or ignore_index with ``--unlabeled ignore``).

A label raster (:class:`RasterBlock`) is read onto the block's grid instead, by nearest
neighbour (:func:`geovision.geo.rasterlabels.read_label_window`: only the part under the
block is read).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize

from geovision.formats import BACKGROUND, IGNORE_INDEX
from geovision.geo.classes import ClassTable
from geovision.geo.grid import Grid
from geovision.geo.raster import cached_open
from geovision.geo.rasterlabels import LabelRaster, read_label_window
from geovision.geo.windows import PixelWindow, window_bounds

# rasterize() burns into a scratch dataset that has no georeferencing of its own (the transform
# given places the shapes) and warns about it from worker threads, where a catch_warnings block
# would not be thread-safe: silence that one message where it is raised.
warnings.filterwarnings("ignore", message="Dataset has no geotransform",
                        category=NotGeoreferencedWarning, module="rasterio.features")


@dataclass(frozen=True)
class RasterBlock:
    """A label raster to read onto a block's grid.

    Attributes:
        raster: the label raster.
        table: how its values become class ids.
        grid: the block's grid (its source's CRS).
    """

    raster: LabelRaster
    table: ClassTable
    grid: Grid


@dataclass(frozen=True)
class BlockLabels:
    """The labels of a block: its source's features that meet it, or a label raster.

    Attributes:
        shapes: GeoJSON-like mappings in the source's CRS.
        values: class id of each shape.
        pixel_boxes: each feature's box in the source's pixel coordinates
            ``(col_min, row_min, col_max, row_max)`` (detection boxes).
        fill: id of the pixels no label covers (background or ignore_index).
        raster: a label raster read instead of the shapes (None: vector labels).
    """

    shapes: tuple[dict[str, Any], ...]
    values: np.ndarray
    pixel_boxes: np.ndarray
    fill: int = BACKGROUND
    raster: RasterBlock | None = None

    def __len__(self) -> int:
        return len(self.shapes)


def _vertices(xy: np.ndarray) -> list[tuple[float, float]]:
    """``(x, y)`` tuples of an ``(n, 2)`` array of coordinates."""
    x, y = xy.T.tolist()
    return list(zip(x, y, strict=True))


def geojson(geoms: np.ndarray) -> list[dict[str, Any]]:
    """GeoJSON-like mappings of shapely geometries (2-D), as ``__geo_interface__`` gives.

    Polygons and multipolygons are built from :func:`shapely.to_ragged_array` (one array of
    coordinates, ``tolist`` once), several times faster than ``__geo_interface__`` per feature;
    other geometry types use ``__geo_interface__``. Vertices are ``(x, y)`` tuples, made from
    the columns' lists by ``zip`` (faster than ``tolist`` of the ``(n, 2)`` array); the
    garbage collector stops tracking a tuple of floats at its first pass, so the vertices a
    run keeps add nothing to its later collections.
    """
    out: list[dict[str, Any] | None] = [None] * len(geoms)
    kinds = shapely.get_type_id(geoms)
    polys = np.flatnonzero(kinds == shapely.GeometryType.POLYGON)
    multis = np.flatnonzero(kinds == shapely.GeometryType.MULTIPOLYGON)
    if len(polys):
        _, xy, (rings, parts) = shapely.to_ragged_array(geoms[polys], include_z=False)
        coords, rings_l, parts_l = _vertices(xy), rings.tolist(), parts.tolist()
        for k, i in enumerate(polys.tolist()):
            out[i] = {"type": "Polygon", "coordinates": [
                coords[rings_l[r]:rings_l[r + 1]] for r in range(parts_l[k], parts_l[k + 1])]}
    if len(multis):
        _, xy, (rings, parts, multi) = shapely.to_ragged_array(geoms[multis], include_z=False)
        coords, rings_l, parts_l, multi_l = _vertices(xy), rings.tolist(), parts.tolist(), \
            multi.tolist()
        for k, i in enumerate(multis.tolist()):
            out[i] = {"type": "MultiPolygon", "coordinates": [
                [coords[rings_l[r]:rings_l[r + 1]] for r in range(parts_l[p], parts_l[p + 1])]
                for p in range(multi_l[k], multi_l[k + 1])]}
    for i, value in enumerate(out):
        if value is None:
            out[i] = geoms[i].__geo_interface__
    return out  # type: ignore[return-value]


class SourceLabels:
    """The label features of one source, in its CRS, with an STRtree for block queries.

    Args:
        geoms: shapely geometries in the source's CRS, in file order (areas to burn).
        values: class id of each geometry.
        transform: the source's affine (map coordinates of pixel corners).
        boxes: each feature's detection box in map units ``(xmin, ymin, xmax, ymax)``
            (None: the geometries' bounds).
        fill: id of the pixels no feature covers.
    """

    def __init__(self, geoms: np.ndarray, values: np.ndarray, transform: Affine,
                 boxes: np.ndarray | None = None, fill: int = BACKGROUND) -> None:
        self.geoms = np.asarray(geoms, dtype=object)
        self.values = np.asarray(values)
        self.transform = transform
        self.fill = fill
        self.tree = shapely.STRtree(self.geoms)
        self._mappings: np.ndarray = np.full(len(self.geoms), None, dtype=object)
        self._left: np.ndarray | None = None  # selects still to take each feature
        self._lock = threading.Lock()
        bounds = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if boxes is not None \
            else shapely.bounds(self.geoms).reshape(-1, 4) if len(self.geoms) else \
            np.zeros((0, 4))
        inv = ~transform
        c0, r0 = inv @ (bounds[:, 0], bounds[:, 1])
        c1, r1 = inv @ (bounds[:, 2], bounds[:, 3])
        self.pixel_boxes = np.stack([np.minimum(c0, c1), np.minimum(r0, r1),
                                     np.maximum(c0, c1), np.maximum(r0, r1)], axis=1)

    def hits(self, window: PixelWindow) -> np.ndarray:
        """Indices (file order) of the features whose envelope meets ``window``."""
        box = shapely.box(*window_bounds(window, self.transform))
        return np.sort(self.tree.query(box))

    def expect(self, windows: Sequence[PixelWindow]) -> None:
        """Announce the windows :meth:`select` will be asked for (once each, any order).

        A feature's mapping is then dropped by the select that is the last of them to take
        it. A window asked for again, or not announced, gets the same labels (mappings are
        made again where they were dropped).
        """
        left = np.zeros(len(self.geoms), np.int64)
        for window in windows:
            np.add.at(left, self.hits(window), 1)
        with self._lock:
            self._left = left

    def select(self, window: PixelWindow, *, shapes: bool = True) -> BlockLabels:
        """The features that meet ``window``, ready to burn (``shapes=False``: boxes only).

        Boxes are only made of classes: features a class map makes background or ignored
        give none.
        """
        idx = self.hits(window)
        mappings: tuple[dict[str, Any], ...] = ()
        if not shapes:
            idx = idx[(self.values[idx] != BACKGROUND) & (self.values[idx] != IGNORE_INDEX)]
        if shapes:
            # a copy (fancy indexing): another thread's select may drop mappings meanwhile
            taken = self._mappings[idx]
            missing = np.flatnonzero([m is None for m in taken])
            if len(missing):
                converted = np.empty(len(missing), dtype=object)
                converted[:] = geojson(self.geoms[idx[missing]])
                taken[missing] = converted
                self._mappings[idx[missing]] = converted
            mappings = tuple(taken)
            with self._lock:  # blocks select on several threads
                if self._left is not None and len(idx):
                    self._left[idx] -= 1
                    self._mappings[idx[self._left[idx] <= 0]] = None
        return BlockLabels(shapes=mappings, values=self.values[idx],
                           pixel_boxes=self.pixel_boxes[idx], fill=self.fill)


def burn(labels: BlockLabels | None, window: PixelWindow, transform: Affine) -> np.ndarray:
    """Class ids on a block's pixel grid: ``labels.fill`` where no label holds the pixel centre.

    Args:
        labels: the labels of the block (None or no feature: all background, or ``fill``).
        window: the block, in its source's pixels.
        transform: the source's affine.

    Returns:
        A ``(window.height, window.width)`` uint8 array.
    """
    return burn_counted(labels, window, transform)[0]


def burn_counted(labels: BlockLabels | None, window: PixelWindow, transform: Affine
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`burn`, and where a label raster's values were dropped (None: nowhere)."""
    shape = (window.height, window.width)
    if labels is not None and labels.raster is not None:
        r = labels.raster
        got = read_label_window(r.raster, r.table, r.grid, fill=labels.fill,
                                ds=cached_open(r.raster.path))
        return got.ids, got.dropped_at
    fill = BACKGROUND if labels is None else labels.fill
    if labels is None or len(labels) == 0:
        return np.full(shape, fill, dtype=np.uint8), None
    return rasterize(zip(labels.shapes, labels.values.tolist(), strict=True), out_shape=shape,
                     transform=window.transform(transform), fill=fill, dtype="uint8"), None
