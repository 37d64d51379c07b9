"""Areas of interest and partial labels: where labels are known, and what unlabelled pixels are.

An area of interest (AOI, ``--aoi FILE``: polygons in any CRS) says where the labels are
complete. On a window of an image grid:

- a pixel is inside the AOI when its centre is (:func:`aoi_mask`; the rule rasterio's
  ``rasterize`` uses, so the AOI and burned labels agree pixel for pixel);
- outside the AOI, the mask is always ``IGNORE_INDEX``;
- inside, a pixel that no label covers is background or ``IGNORE_INDEX``, as
  ``unlabeled`` (``--unlabeled background|ignore``) says: burn labels onto
  :func:`unlabeled_fill` and the rule is applied;
- a tile is made when its share of pixels that are valid and inside the AOI reaches
  ``--min-valid`` (:func:`valid_share`); detection keeps only tiles wholly inside
  (:func:`window_inside`), since an object outside the AOI may be missing from the labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from pyproj import CRS as ProjCRS
from rasterio.features import geometry_mask

from geovision.errors import InputError, InputFileError
from geovision.formats import BACKGROUND, IGNORE_INDEX
from geovision.geo.grid import Grid
from geovision.geo.paths import gdal_path, is_local
from geovision.geo.shapes import POLYGON, explode_collections, kinds

#: Choices of ``--unlabeled``: what pixels inside the AOI that no label covers become.
UNLABELED = ("background", "ignore")


@dataclass(frozen=True)
class AreaOfInterest:
    """The union of an AOI file's polygons, in the file's CRS.

    Attributes:
        path: the file (GDAL path).
        geometry: the union of its polygons (valid).
        crs: the file's CRS (WKT).
        features: polygon features read.
    """

    path: str
    geometry: shapely.Geometry
    crs: str
    features: int

    def in_crs(self, crs: Any) -> shapely.Geometry:
        """The AOI in another CRS (a rasterio or pyproj CRS, or any input pyproj takes)."""
        target = ProjCRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
        if target.equals(ProjCRS.from_user_input(self.crs)):
            return self.geometry
        series = gpd.GeoSeries([self.geometry], crs=self.crs).to_crs(target)
        geom = series.iloc[0]
        return geom if shapely.is_valid(geom) else shapely.make_valid(geom)

    def describe(self) -> dict[str, Any]:
        """The ``aoi`` record of ``attrs.labels``."""
        return {"path": self.path, "crs": self.crs, "features": self.features,
                "bounds": [float(v) for v in shapely.bounds(self.geometry)]}


def read_aoi(path: str | os.PathLike[str], *, layer: str | None = None) -> AreaOfInterest:
    """Read an AOI file: its polygons (geometry collections: their polygon parts), unioned.

    Raises:
        InputFileError: the file is missing or not a vector file.
        InputError: it has no CRS, no polygon, or points or lines.
    """
    spath = gdal_path(path)
    if is_local(spath) and not os.path.exists(spath):
        raise InputFileError(f"{spath}: AOI file not found (--aoi)")
    try:
        frame = gpd.read_file(spath, layer=layer, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputFileError(f"{spath}: not a vector file OGR can read (--aoi; "
                             f"{str(exc).splitlines()[0]})") from exc
    if frame.crs is None:
        raise InputError(f"{spath}: the AOI has no CRS; assign one (ogr2ogr -a_srs EPSG:XXXX)")
    geoms = np.asarray(frame.geometry.values, dtype=object)
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    parts, _ = explode_collections(geoms)
    k = kinds(parts) if len(parts) else np.array([], dtype=object)
    if (k != POLYGON).any():
        raise InputError(f"{spath}: the AOI holds {int((k != POLYGON).sum())} point or line "
                         "geometries; an area of interest is made of polygons (buffer them "
                         "first, e.g. ogr2ogr -dialect sqlite -sql 'SELECT ST_Buffer(...)')")
    if not len(parts):
        raise InputError(f"{spath}: the AOI holds no polygon (--aoi)")
    bad = ~shapely.is_valid(parts)
    if bad.any():
        parts = parts.copy()
        parts[bad] = shapely.make_valid(parts[bad])
    return AreaOfInterest(path=spath, geometry=shapely.union_all(parts),
                          crs=frame.crs.to_wkt(), features=len(geoms))


def aoi_mask(area: shapely.Geometry, grid: Grid) -> np.ndarray:
    """True where a pixel's centre lies inside ``area`` (given in the grid's CRS).

    The same pixel-centre rule as ``rasterio.features.rasterize`` (``all_touched=False``).
    """
    box = shapely.box(*grid.bounds)
    if shapely.covers(area, box):
        return np.ones(grid.shape, dtype=bool)
    if not shapely.intersects(area, box):
        return np.zeros(grid.shape, dtype=bool)
    # Clip to the window grown by a pixel first: a far smaller polygon to rasterize, and the
    # same answer for every pixel centre of the window.
    rx, ry = grid.res
    left, bottom, right, top = grid.bounds
    part = shapely.clip_by_rect(area, left - rx, bottom - ry, right + rx, top + ry)
    if shapely.is_empty(part):
        return np.zeros(grid.shape, dtype=bool)
    return geometry_mask([part], out_shape=grid.shape, transform=grid.transform, invert=True)


def window_inside(area: shapely.Geometry, grid: Grid) -> bool:
    """True when every pixel centre of the window lies inside ``area`` (grid's CRS)."""
    return bool(aoi_mask(area, grid).all())


def valid_share(inside: np.ndarray, valid: np.ndarray | None = None) -> float:
    """The share of a window's pixels that hold data and lie inside the AOI."""
    use = inside if valid is None else inside & valid
    return float(use.mean()) if use.size else 0.0


def unlabeled_fill(unlabeled: str) -> int:
    """The id to burn labels onto: BACKGROUND (``background``) or IGNORE_INDEX (``ignore``).

    Raises:
        InputError: ``unlabeled`` is not one of :data:`UNLABELED`.
    """
    if unlabeled not in UNLABELED:
        raise InputError(f"--unlabeled: '{unlabeled}' is not a choice; choose one of "
                         f"{', '.join(UNLABELED)}")
    return BACKGROUND if unlabeled == "background" else IGNORE_INDEX


def finish_mask(ids: np.ndarray, *, inside: np.ndarray | None = None,
                valid: np.ndarray | None = None) -> np.ndarray:
    """A tile's mask: ``ids`` with IGNORE_INDEX outside the AOI and where the image is nodata.

    Args:
        ids: class ids burned onto the ``unlabeled`` fill (uint8), changed in place.
        inside: pixels inside the AOI (None: no AOI).
        valid: pixels holding data (None: all).

    Returns:
        ``ids``.
    """
    if inside is not None:
        ids[~inside] = IGNORE_INDEX
    if valid is not None:
        ids[~valid] = IGNORE_INDEX
    return ids
