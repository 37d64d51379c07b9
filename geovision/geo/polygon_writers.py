"""Writing regions as vector features, batch by batch, so memory stays bounded.

Two formats:

- GeoPackage: one layer (``PolygonOptions.layer``) in the scene's CRS, appended in batches
  through pyogrio, with a spatial index. Written into an existing GeoPackage
  (``keep_layers``), the file's other layers stay: the layer is written into a copy, which
  replaces the file once complete.
- GeoJSON (RFC 7946): a FeatureCollection in WGS 84 longitude/latitude, counter-clockwise
  exterior rings, 7 decimals, streamed feature by feature. Edges are first cut into pieces of
  at most :data:`DENSIFY` pixels so long straight edges follow the reprojection.

Every feature has ``class`` (name), ``class_id``, ``area`` (m², the area of its pixels; see
:meth:`~geovision.geo.polygons.PolygonPlan.pixel_areas`), ``mean_prob`` (null without
probabilities) and ``pixels``. Files appear under their name only once complete (written
under a temporary name, then renamed).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np
import pyogrio.raw
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Transformer

from geovision.geo.polygons import PolygonPlan
from geovision.geo.regions import Regions

#: Features gathered before each write to the GeoPackage.
BATCH = 50_000
#: Longest edge (pixels) before reprojection to WGS 84.
DENSIFY = 64.0
#: Attribute names and their OGR types, in order.
FIELDS = ("class", "class_id", "area", "mean_prob", "pixels")


def mean_prob(regions: Regions) -> np.ndarray:
    """Mean class probability of each region (NaN when there are no probabilities)."""
    if regions.prob_sum is None:
        return np.full(len(regions), np.nan)
    return regions.prob_sum / np.maximum(regions.pixels, 1)


class PolygonWriter:
    """Writes regions to a GeoPackage or GeoJSON file as they come (see the module doc)."""

    def __init__(self, path: str | os.PathLike[str], plan: PolygonPlan, *,
                 keep_layers: bool = False) -> None:
        """Open ``path`` for writing (under a temporary name until :meth:`close`).

        Args:
            path: the file to write.
            plan: the scene's plan (CRS, transform, class names, options).
            keep_layers: ``path`` is a GeoPackage whose other layers stay; a layer of the
                same name is replaced.
        """
        self.path = Path(path)
        self.plan = plan
        self.format = plan.options.format
        self.features = 0
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp-{os.getpid()}{self.path.suffix}")
        self.tmp.unlink(missing_ok=True)
        if keep_layers and self.format == "gpkg" and self.path.exists():
            shutil.copyfile(self.path, self.tmp)
        self._pending: list[Regions] = []
        self._pending_n = 0
        self._json: IO[str] | None = None
        self._created = False
        self._to_wgs84: Transformer | None = None
        if self.format == "geojson":
            self._json = open(self.tmp, "w", encoding="utf-8")
            self._json.write('{"type":"FeatureCollection","features":[\n')
            crs = ProjCRS.from_wkt(plan.crs) if plan.crs else None
            if crs is not None and crs.to_epsg() != 4326:
                self._to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def __enter__(self) -> PolygonWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()

    def write(self, regions: Regions) -> None:
        """Add regions (scene pixel coordinates); written when a batch is full."""
        if len(regions) == 0:
            return
        self._pending.append(regions)
        self._pending_n += len(regions)
        if self._pending_n >= BATCH:
            self._flush()

    def close(self) -> Path:
        """Write what is left and put the file in place.

        Returns:
            The path written.
        """
        self._flush()
        if self._json is not None:
            self._json.write("]}\n")
            self._json.close()
            self._json = None
        elif not self._created:
            self._write_gpkg(Regions.empty(False))
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self._json is not None:
            self._json.close()
            self._json = None
        self.tmp.unlink(missing_ok=True)

    def _flush(self) -> None:
        if not self._pending:
            return
        with_prob = any(r.prob_sum is not None for r in self._pending)
        regions = Regions.concat(self._pending, with_prob)
        self._pending, self._pending_n = [], 0
        if self.format == "geojson":
            self._write_geojson(regions)
        else:
            self._write_gpkg(regions)
        self.features += len(regions)

    def _properties(self, regions: Regions) -> list[np.ndarray]:
        ids, where = np.unique(regions.class_id, return_inverse=True)
        table = np.array([self.plan.name_of(int(c)) for c in ids.tolist()], dtype=object)
        return [table[where.ravel()], regions.class_id.astype(np.int32), regions.area,
                mean_prob(regions), regions.pixels.astype(np.int64)]

    def _write_gpkg(self, regions: Regions) -> None:
        geoms = regions.geometries(self.plan.affine)
        pyogrio.raw.write(
            str(self.tmp), shapely.to_wkb(geoms), self._properties(regions), list(FIELDS),
            layer=self.plan.layer, driver="GPKG", geometry_type="Polygon",
            crs=self.plan.crs or None, append=self._created, nan_as_null=True)
        self._created = True

    def _write_geojson(self, regions: Regions) -> None:
        assert self._json is not None
        geoms = regions.geometries()
        if self._to_wgs84 is not None:
            geoms = shapely.segmentize(geoms, DENSIFY)
        _, xy, offsets = shapely.to_ragged_array(geoms)
        t = self.plan.affine
        x = t.a * xy[:, 0] + t.b * xy[:, 1] + t.c
        y = t.d * xy[:, 0] + t.e * xy[:, 1] + t.f
        if self._to_wgs84 is not None:
            x, y = self._to_wgs84.transform(x, y)
        lonlat = np.round(np.column_stack([x, y]), 7)
        geoms = shapely.from_ragged_array(shapely.GeometryType.POLYGON, lonlat, offsets)
        texts = shapely.to_geojson(shapely.orient_polygons(geoms, exterior_cw=False))
        props = self._properties(regions)
        lines = []
        for k, text in enumerate(texts.tolist()):
            p = {"class": props[0][k], "class_id": int(props[1][k]),
                 "area": round(float(props[2][k]), 3),
                 "mean_prob": None if np.isnan(props[3][k]) else round(float(props[3][k]), 6),
                 "pixels": int(props[4][k])}
            sep = "," if self.features + k else ""
            lines.append(f'{sep}{{"type":"Feature","properties":'
                         f'{json.dumps(p, separators=(",", ":"))},"geometry":{text}}}\n')
        self._json.writelines(lines)
