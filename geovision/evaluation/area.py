"""The ground area of a raster's pixels, in square metres whatever the CRS.

* Projected CRS: every pixel has the planar area ``|a e| f^2`` (``a``, ``e`` the pixel size
  in CRS units, ``f`` metres per unit), the area on the map plane, as GIS tools report it.
* Geographic CRS: a pixel is a quadrangle between two parallels and two meridians; its area
  on the CRS's ellipsoid depends on its latitude only, so each row gets its own (see
  :func:`quadrangle_area`).
* A CRS whose unit is not a length nor an angle: areas stay in squared CRS units, and the
  unit says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS as ProjCRS

from geovision.errors import InputError


def authalic_q(lat: np.ndarray, e2: float) -> np.ndarray:
    """Snyder's ``q``, the function of latitude behind the authalic latitude.

    From Snyder (1987), Map Projections: A Working Manual, USGS Professional Paper 1395,
    eq. 3-12: ``q(phi) = (1 - e^2) [ sin(phi) / (1 - e^2 sin^2(phi))
    - 1 / (2e) ln((1 - e sin(phi)) / (1 + e sin(phi))) ]``, which tends to ``2 sin(phi)`` on a
    sphere (``e = 0``).

    Args:
        lat: latitudes in radians.
        e2: squared eccentricity of the ellipsoid.
    """
    s = np.sin(np.asarray(lat, dtype=np.float64))
    if e2 < 1e-15:
        return 2.0 * s
    e = math.sqrt(e2)
    return (1 - e2) * (s / (1 - e2 * s**2) - np.log((1 - e * s) / (1 + e * s)) / (2 * e))


def quadrangle_area(lat0: np.ndarray, lat1: np.ndarray, dlon: float, a: float,
                    e2: float) -> np.ndarray:
    """Area of the ellipsoid between two parallels over ``dlon`` radians of longitude.

    ``area = a^2 / 2 * dlon * |q(lat1) - q(lat0)|`` with :func:`authalic_q` (a zone of the
    ellipsoid between two parallels has area ``pi a^2 |q1 - q0|``; a quadrangle is its
    ``dlon / 2 pi`` share).

    Args:
        lat0: latitudes of one edge, radians.
        lat1: latitudes of the other edge, radians.
        dlon: longitude width, radians.
        a: semi-major axis in metres.
        e2: squared eccentricity.

    Returns:
        Areas in square metres.
    """
    return a**2 / 2.0 * abs(dlon) * np.abs(authalic_q(lat1, e2) - authalic_q(lat0, e2))


@dataclass(frozen=True)
class PixelArea:
    """Area of the pixels of a raster grid.

    Attributes:
        unit: ``m2``, or ``crs_unit2`` when the CRS unit is neither a length nor an angle.
        method: ``planar`` (projected CRS: map-plane area) or ``ellipsoidal`` (geographic CRS:
            area on the CRS's ellipsoid, by row).
        transform: the raster's affine.
        planar: area of one pixel (planar method).
        semi_major: the ellipsoid's semi-major axis in metres (ellipsoidal method).
        e2: its squared eccentricity (ellipsoidal method).
        radians: radians per CRS unit (ellipsoidal method).
        ellipsoid: the ellipsoid's name (ellipsoidal method).
    """

    unit: str
    method: str
    transform: Affine
    planar: float = 0.0
    semi_major: float = 0.0
    e2: float = 0.0
    radians: float = 0.0
    ellipsoid: str | None = None

    def rows(self, row: int, count: int) -> np.ndarray:
        """Area of one pixel of each of ``count`` rows from ``row``: ``(count,)`` float64."""
        if self.method == "planar":
            return np.full(count, self.planar)
        t = self.transform
        edges = t.f + t.e * np.arange(row, row + count + 1, dtype=np.float64)
        lat = np.clip(edges * self.radians, -math.pi / 2, math.pi / 2)
        return quadrangle_area(lat[:-1], lat[1:], t.a * self.radians, self.semi_major, self.e2)

    def describe(self) -> dict[str, Any]:
        """The ``area`` record of score.json (what the areas are and how they were found)."""
        if self.method == "planar":
            text = ("planar: pixel area on the map plane of the projected CRS"
                    if self.unit == "m2" else
                    "planar, in squared CRS units (the CRS unit is not a length)")
            return {"unit": self.unit, "method": self.method, "pixel_area": self.planar,
                    "note": text}
        return {"unit": self.unit, "method": self.method, "ellipsoid": self.ellipsoid,
                "note": "geographic CRS: each pixel's area on the ellipsoid, row by row "
                        "(Snyder 1987, eq. 3-12)"}


def pixel_area(crs: Any, transform: Affine) -> PixelArea:
    """How to compute the area of a grid's pixels (see the module's docstring).

    Args:
        crs: a rasterio or pyproj CRS, or anything pyproj reads.
        transform: the grid's north-up affine.
    """
    pcrs = ProjCRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    axis = pcrs.axis_info[0] if pcrs.axis_info else None
    factor = axis.unit_conversion_factor if axis is not None else 1.0
    if pcrs.is_geographic:
        ell = pcrs.ellipsoid
        if ell is None:
            raise InputError(f"{crs}: a geographic CRS without an ellipsoid; pixel areas "
                             "cannot be computed")
        a = ell.semi_major_metre
        b = ell.semi_minor_metre
        return PixelArea(unit="m2", method="ellipsoidal", transform=transform,
                         semi_major=a, e2=1.0 - (b / a) ** 2, radians=factor,
                         ellipsoid=ell.name)
    unit_type = getattr(axis, "unit_name", "") if axis is not None else ""
    linear = axis is not None and unit_type not in ("", "unknown") and pcrs.is_projected
    planar = abs(transform.a * transform.e)
    if linear:
        return PixelArea(unit="m2", method="planar", transform=transform,
                         planar=planar * factor**2)
    return PixelArea(unit="crs_unit2", method="planar", transform=transform, planar=planar)
