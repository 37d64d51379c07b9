"""Pixel sizes compared like with like: a model's training resolution against a scene's.

A pixel size means nothing without its unit: 0.0083 (degrees) and 600 (metres) can be the
same pixel. :func:`compare_resolution` compares a model's pixel size (with the CRS it was
measured in) with a scene's grid:

- same CRS, or both in linear units (metres, feet: converted to metres), or both in angular
  units (converted to degrees): the sizes are compared directly;
- one in degrees and the other in metres: the degrees are converted to metres on the
  ellipsoid at the scene's centre (the ground size of one pixel step east and north there);
- a pixel size without a CRS (bundles written before the unit was recorded) is taken to be
  in the scene's units.

The factor is scene / model: 2 means the scene's pixels are twice as large (objects look
half their training size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pyproj import CRS as ProjCRS
from pyproj import Transformer

from geovision.geo.grid import Grid


@dataclass(frozen=True)
class PixelSize:
    """A pixel size (x, y), positive, in the units of ``crs`` (WKT; None: unknown)."""

    x: float
    y: float
    crs: str | None = None

    @classmethod
    def of(cls, grid: Grid) -> PixelSize:
        """The pixel size of a grid, with its CRS."""
        return cls(grid.res[0], grid.res[1], grid.crs.to_wkt() if grid.crs else None)

    @property
    def unit(self) -> str | None:
        """The unit's name (``metre``, ``degree``, ...), or None without a CRS."""
        if self.crs is None:
            return None
        return str(_crs(self.crs).axis_info[0].unit_name)

    def describe(self) -> dict[str, Any]:
        """For the model bundle: ``{x, y, unit, crs}``."""
        return {"x": self.x, "y": self.y, "unit": self.unit, "crs": self.crs}


@dataclass(frozen=True)
class ResolutionMatch:
    """A scene's pixel size against a model's, in one unit.

    Attributes:
        scene: the scene's pixel size (x, y) in ``unit``.
        model: the model's pixel size (x, y) in ``unit``.
        unit: ``metre``, ``degree`` or the scene's unit when one side has no CRS.
    """

    scene: tuple[float, float]
    model: tuple[float, float]
    unit: str

    @property
    def factors(self) -> tuple[float, float]:
        """Scene / model along x and y."""
        return (self.scene[0] / self.model[0], self.scene[1] / self.model[1])

    @property
    def factor(self) -> float:
        """Scene / model as one number: the geometric mean of the x and y factors."""
        fx, fy = self.factors
        return math.sqrt(fx * fy)

    def differs(self, tolerance: float) -> bool:
        """True when the factor differs from 1 by more than ``tolerance`` (relative)."""
        return abs(self.factor - 1.0) > tolerance


def compare_resolution(model: PixelSize, scene: Grid) -> ResolutionMatch:
    """Compare a model's pixel size with a scene's, like with like (see the module)."""
    sx, sy = scene.res
    if model.crs is None:
        unit = str(_crs(scene.crs.to_wkt()).axis_info[0].unit_name)
        return ResolutionMatch((sx, sy), (model.x, model.y), unit)
    scene_crs, model_crs = _crs(scene.crs.to_wkt()), _crs(model.crs)
    if scene_crs.equals(model_crs):
        return ResolutionMatch((sx, sy), (model.x, model.y), str(
            scene_crs.axis_info[0].unit_name))
    s_kind, m_kind = _kind(scene_crs), _kind(model_crs)
    if s_kind == m_kind == "linear":
        return ResolutionMatch(_metres(scene_crs, sx, sy), _metres(model_crs, model.x, model.y),
                               "metre")
    if s_kind == m_kind == "angular":
        return ResolutionMatch(_degrees(scene_crs, sx, sy),
                               _degrees(model_crs, model.x, model.y), "degree")
    lon, lat = _centre_lonlat(scene)
    scene_m = (_ground(scene_crs, sx, sy, lon, lat) if s_kind == "angular"
               else _metres(scene_crs, sx, sy))
    model_m = (_ground(model_crs, model.x, model.y, lon, lat) if m_kind == "angular"
               else _metres(model_crs, model.x, model.y))
    return ResolutionMatch(scene_m, model_m, "metre")


def _crs(wkt: str) -> ProjCRS:
    return ProjCRS.from_user_input(wkt)


def _kind(crs: ProjCRS) -> str:
    unit = crs.axis_info[0].unit_name.lower() if crs.axis_info else ""
    return "angular" if crs.is_geographic or unit in ("degree", "radian", "grad") else "linear"


def _metres(crs: ProjCRS, x: float, y: float) -> tuple[float, float]:
    axis = crs.axis_info[0]
    f = axis.unit_conversion_factor or 1.0
    return (x * f, y * f)


def _degrees(crs: ProjCRS, x: float, y: float) -> tuple[float, float]:
    f = math.degrees(crs.axis_info[0].unit_conversion_factor or math.radians(1.0))
    return (x * f, y * f)


def _centre_lonlat(grid: Grid) -> tuple[float, float]:
    """The scene's centre in longitude and latitude (degrees, WGS 84)."""
    left, bottom, right, top = grid.bounds
    cx, cy = (left + right) / 2, (bottom + top) / 2
    tr = Transformer.from_crs(grid.crs.to_wkt(), "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(cx, cy)
    return float(lon), float(lat)


def _ground(crs: ProjCRS, x: float, y: float, lon: float, lat: float) -> tuple[float, float]:
    """Metres on the ground of a pixel step of (x, y) angular units at (lon, lat)."""
    dx, dy = _degrees(crs, x, y)
    geod = crs.get_geod()
    if geod is None:  # pragma: no cover - every geographic CRS has an ellipsoid
        raise ValueError("CRS without an ellipsoid")
    _, _, ex = geod.inv(lon - dx / 2, lat, lon + dx / 2, lat)
    _, _, ey = geod.inv(lon, lat - dy / 2, lon, lat + dy / 2)
    return (float(ex), float(ey))
