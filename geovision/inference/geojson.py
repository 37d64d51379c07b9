"""GeoJSON output: boxes and cells from scene pixels to map coordinates.

RFC 7946 by default: WGS 84 longitude/latitude, counter-clockwise exterior rings, no ``crs``
member. With ``crs="native"`` the coordinates stay in the scene's CRS and a ``crs`` member
names it (the form GDAL/OGR read), which strict RFC 7946 readers ignore.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from geovision.atomic import write_text
from geovision.errors import InputError


def pixel_boxes(boxes: np.ndarray, transform: Affine) -> np.ndarray:
    """Shapely polygons in map coordinates of ``(N, 4)`` xyxy pixel boxes."""
    if len(boxes) == 0:
        return np.array([], dtype=object)
    a, _b, c, _d, e, f = tuple(transform)[:6]
    x0 = a * boxes[:, 0] + c
    x1 = a * boxes[:, 2] + c
    y0 = e * boxes[:, 1] + f
    y1 = e * boxes[:, 3] + f
    return shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1),
                       np.maximum(y0, y1))


def to_target(geoms: np.ndarray, crs: CRS, target: str, *,
              segment: float | None = None) -> np.ndarray:
    """Reproject polygons to WGS 84 (``target="wgs84"``) or keep them (``"native"``).

    Args:
        geoms: polygons in ``crs``.
        crs: their CRS.
        target: ``wgs84`` or ``native``.
        segment: densify edges to this length (CRS units) first, so that long edges follow
            the curvature of the reprojection.

    Returns:
        Polygons with counter-clockwise exterior rings (RFC 7946's right-hand rule).
    """
    if len(geoms) == 0:
        return geoms
    if target == "wgs84" and not crs.to_epsg() == 4326:
        if segment:
            geoms = shapely.segmentize(geoms, segment)
        tr = Transformer.from_crs(crs.to_wkt(), "EPSG:4326", always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(
            xy[:, 0], xy[:, 1])))
    return shapely.orient_polygons(geoms, exterior_cw=False)


def crs_member(crs: CRS) -> dict[str, Any]:
    """The ``crs`` member of a native-CRS GeoJSON (an OGC URN of the EPSG code).

    Raises:
        InputError: the CRS has no EPSG code.
    """
    epsg = crs.to_epsg()
    if epsg is None:
        raise InputError("--crs native: the scene's CRS has no EPSG code, which GeoJSON "
                         "needs to name it; use --crs wgs84")
    return {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}


def write_features(path: str | os.PathLike[str], geoms: np.ndarray,
                   properties: Sequence[dict[str, Any]], *, crs: CRS, target: str) -> Path:
    """Write polygons and their properties as a GeoJSON FeatureCollection, atomically.

    Args:
        path: the file to write.
        geoms: polygons in the output CRS (see :func:`to_target`).
        properties: one dict of plain values per polygon.
        crs: the scene's CRS (named in the file when ``target`` is ``native``).
        target: ``wgs84`` or ``native``.

    Returns:
        The path written.
    """
    digits = 7 if target == "wgs84" or crs.is_geographic else 3
    features = []
    for geom, props in zip(geoms, properties, strict=True):
        ring = np.round(shapely.get_coordinates(geom.exterior), digits).tolist()
        features.append({"type": "Feature", "properties": props,
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    doc: dict[str, Any] = {"type": "FeatureCollection"}
    if target == "native":
        doc["crs"] = crs_member(crs)
    doc["features"] = features
    return write_text(path, json.dumps(doc, separators=(",", ":")))
