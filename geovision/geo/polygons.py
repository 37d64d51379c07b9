"""Class rasters to polygons, one block at a time: options, the scene plan and the block step.

A class raster is cut into a grid of blocks (any row and column cuts: a regular grid, or the
pieces of an inference layout). :func:`polygonize_block` turns one block into a small, plain
value (:class:`BlockPolygons`): the regions that lie wholly inside the block (finished), and
the parts of regions that touch a side shared with another block (open), with the runs of
pixels they hold along each such side. :class:`~geovision.geo.stitch.Stitcher` joins open
parts across seams in any block order.

Everything stays in scene pixel coordinates (``x`` = column, ``y`` = row, integers) until a
writer maps it to the scene's CRS, so unions of parts are exact.

Per-region sums come from the traced rings by Green's theorem, with no labelled raster: for a
per-pixel quantity ``q`` with summed-area table ``S[y, x] = sum(q[:y, :x])``, the sum of ``q``
over the pixels a ring encloses is ``|sum over vertical edges (x, y0) -> (x, y1) of
S[y1, x] - S[y0, x]|``; with ``q = 1`` this is the shoelace area ``|∮ x dy|``, i.e. the pixel
count. A region's sum is its exterior ring's minus its holes'.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS as ProjCRS

from geovision.errors import InputError
from geovision.geo.regions import Regions
from geovision.geo.windows import PixelWindow
from geovision.options.vectorize import AREA_UNITS, FORMATS, PolygonOptions

__all__ = ["AREA_UNITS", "BACKGROUND", "DEFAULT_BLOCK", "DEFAULT_LAYER", "FORMATS", "SIDES",
           "BlockPolygons", "PolygonOptions", "PolygonPlan", "load_block", "make_plan",
           "regular_edges", "resolve_classes", "save_block"]

#: Class id of the background class, left out of the polygons unless listed.
BACKGROUND = 0
#: GeoPackage layer name when the options give none.
DEFAULT_LAYER = "polygons"
#: Block side used when a raster's tiling suggests none.
DEFAULT_BLOCK = 1024
#: Sides of a block, in the order of :attr:`BlockPolygons.sides`.
SIDES = ("top", "bottom", "left", "right")


def regular_edges(length: int, size: int) -> tuple[int, ...]:
    """Cuts ``0, size, 2*size, ..., length`` of blocks of ``size`` pixels (the last may be short).

    Raises:
        ValueError: ``length`` or ``size`` is not positive.
    """
    if length <= 0 or size <= 0:
        raise ValueError("length and size must be positive")
    return (*range(0, length, size), length)


@dataclass(frozen=True)
class PolygonPlan:
    """Everything a block and the stitcher need to know of one scene (plain, picklable).

    Attributes:
        height: scene rows.
        width: scene columns.
        transform: the scene's affine (a, b, c, d, e, f).
        crs: the scene's CRS as WKT ("" when it has none).
        row_edges: row cuts of the block grid, from 0 to ``height``.
        col_edges: column cuts of the block grid, from 0 to ``width``.
        keep: class ids vectorized, or None for every class but background.
        class_names: names of known class ids, as ``(id, name)`` pairs.
        options: the polygon options.
        area_model: ``planar`` (square metres per pixel, constant) or ``ellipsoid`` (each
            pixel's exact area on the CRS's ellipsoid; geographic CRSs).
        area_params: ``(m2 per pixel,)`` for planar; ``(semi-major m, semi-minor m, radians
            per CRS unit)`` for ellipsoid.
    """

    height: int
    width: int
    transform: tuple[float, ...]
    crs: str
    row_edges: tuple[int, ...]
    col_edges: tuple[int, ...]
    keep: tuple[int, ...] | None
    class_names: tuple[tuple[int, str], ...]
    options: PolygonOptions
    area_model: str
    area_params: tuple[float, ...]

    @property
    def affine(self) -> Affine:
        """The scene's affine."""
        return Affine(*self.transform[:6])

    @property
    def layer(self) -> str:
        """The GeoPackage layer written (:data:`DEFAULT_LAYER` when the options name none)."""
        return self.options.layer or DEFAULT_LAYER

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Blocks along rows and columns."""
        return (len(self.row_edges) - 1, len(self.col_edges) - 1)

    def windows(self) -> list[PixelWindow]:
        """The blocks' windows, in row-major order."""
        r, c = self.row_edges, self.col_edges
        return [PixelWindow(r[i], c[j], r[i + 1] - r[i], c[j + 1] - c[j])
                for i in range(len(r) - 1) for j in range(len(c) - 1)]

    def block_index(self, window: PixelWindow) -> tuple[int, int]:
        """Grid position (block row, block column) of a block's window.

        Raises:
            ValueError: the window is not a block of this plan's grid.
        """
        try:
            i, j = self.row_edges.index(window.row), self.col_edges.index(window.col)
        except ValueError:
            i = j = -1
        if (i < 0 or j < 0 or i + 1 >= len(self.row_edges) or j + 1 >= len(self.col_edges)
                or self.row_edges[i + 1] - window.row != window.height
                or self.col_edges[j + 1] - window.col != window.width):
            raise ValueError(f"{window} is not a block of the plan's grid")
        return (i, j)

    def neighbours(self, index: tuple[int, int]) -> tuple[tuple[int, int] | None, ...]:
        """The blocks across each side (order of :data:`SIDES`); None at the scene's edge."""
        i, j = index
        n_rows, n_cols = self.grid_shape
        return ((i - 1, j) if i > 0 else None, (i + 1, j) if i + 1 < n_rows else None,
                (i, j - 1) if j > 0 else None, (i, j + 1) if j + 1 < n_cols else None)

    def kept(self, class_ids: np.ndarray) -> np.ndarray:
        """Boolean mask of the class ids that are vectorized."""
        if self.keep is None:
            return class_ids != BACKGROUND
        return np.isin(class_ids, np.asarray(self.keep))

    def name_of(self, class_id: int) -> str:
        """A class id's name (its number as text when the class table does not name it)."""
        return dict(self.class_names).get(int(class_id), str(int(class_id)))

    def pixel_areas(self, row: int, count: int) -> np.ndarray:
        """Area in m² of one pixel in each of ``count`` rows from ``row`` (float64).

        Planar CRSs: ``|a * e - b * d|`` times the square of the CRS unit in metres. Geographic
        CRSs: the area on the ellipsoid of the cell between two parallels ``phi0, phi1`` and
        two meridians ``dlon`` apart, ``dlon / (2 pi) * (Z(phi1) - Z(phi0))``, where ``Z`` is
        the area of the zone from the equator, ``pi b² (s / (1 - e² s²) + atanh(e s) / e)``
        with ``s = sin(phi)``.
        """
        if self.area_model == "planar":
            return np.full(count, self.area_params[0], dtype=np.float64)
        a_m, b_m, rad = self.area_params
        t = self.affine
        lat = (t.f + t.e * np.arange(row, row + count + 1)) * rad
        zone = _zone_area(lat, a_m, b_m)
        return np.abs(np.diff(zone)) * abs(t.a) * rad / (2.0 * math.pi)


def _zone_area(lat: np.ndarray, a: float, b: float) -> np.ndarray:
    """Signed area (m²) of the ellipsoid zone between the equator and latitudes ``lat``."""
    s = np.sin(lat)
    e2 = 1.0 - (b * b) / (a * a)
    if e2 <= 1e-15:
        return 2.0 * math.pi * a * a * s
    e = math.sqrt(e2)
    return math.pi * b * b * (s / (1.0 - e2 * s * s) + np.arctanh(e * s) / e)


def resolve_classes(options: PolygonOptions, class_names: Mapping[int, str] | None, *,
                    flag: str = "--classes") -> tuple[int, ...] | None:
    """Class ids of ``options.classes`` (names or ids); None when every class but 0 is kept.

    Args:
        options: the polygon options.
        class_names: names of the class ids.
        flag: the option's spelling in messages (``--vector-classes`` for ``infer``).

    Raises:
        InputError: a name is not in the class table.
    """
    if not options.classes:
        return None
    names = dict(class_names or {})
    by_name = {v: k for k, v in names.items()}
    out: list[int] = []
    for item in (p.strip() for c in options.classes for p in str(c).split(",")):
        if not item:
            continue
        if item in by_name:
            out.append(by_name[item])
        elif item.lstrip("-").isdigit():
            out.append(int(item))
        else:
            known = ", ".join(f"{k}={v}" for k, v in sorted(names.items())) or "none named"
            raise InputError(f"{flag}: unknown class {item!r}; classes are: {known} "
                             "(give names or ids)")
    return tuple(sorted(set(out)))


def make_plan(options: PolygonOptions, *, height: int, width: int,
              transform: Affine | Sequence[float], crs: Any,
              class_names: Mapping[int, str] | None = None,
              block_size: int | tuple[int, int] = DEFAULT_BLOCK,
              row_edges: Sequence[int] | None = None,
              col_edges: Sequence[int] | None = None) -> PolygonPlan:
    """The plan of one scene: grid of blocks, classes kept and how areas are measured.

    Args:
        options: polygon options.
        height: scene rows.
        width: scene columns.
        transform: the scene's affine (north-up or south-up; no rotation).
        crs: the scene's CRS (anything pyproj reads: rasterio CRS, WKT, "EPSG:..."), or
            None (areas then in square CRS units).
        class_names: names of the class ids (e.g. from the model bundle or raster tags).
        block_size: block side, or (rows, cols), for a regular grid.
        row_edges: explicit row cuts (0 ... height) instead of ``block_size``.
        col_edges: explicit column cuts (0 ... width) instead of ``block_size``.

    Returns:
        The plan.

    Raises:
        InputError: a class in ``options.classes`` is unknown, or the transform is rotated.
        ValueError: the grid cuts do not run from 0 to the scene's size.
    """
    t = Affine(*tuple(transform)[:6])
    if t.b != 0 or t.d != 0:
        raise InputError(f"rotated or sheared geotransform {tuple(t)[:6]} is not supported; "
                         "warp the raster to a north-up grid first (gdalwarp)")
    bh, bw = (block_size, block_size) if isinstance(block_size, int) else block_size
    rows = tuple(int(v) for v in row_edges) if row_edges is not None else regular_edges(
        height, bh)
    cols = tuple(int(v) for v in col_edges) if col_edges is not None else regular_edges(
        width, bw)
    for name, edges, length in (("row", rows, height), ("col", cols, width)):
        if edges[0] != 0 or edges[-1] != length or any(b <= a for a, b in itertools.pairwise(
                edges)):
            raise ValueError(f"{name} edges must rise strictly from 0 to {length}: {edges}")
    wkt, model = "", "planar"
    params: tuple[float, ...] = (abs(t.a * t.e - t.b * t.d),)
    if crs is not None and str(crs):
        pcrs = ProjCRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
        wkt = pcrs.to_wkt()
        factor = pcrs.axis_info[0].unit_conversion_factor if pcrs.axis_info else 1.0
        if pcrs.is_geographic and pcrs.ellipsoid is not None:
            ell = pcrs.ellipsoid
            model, params = "ellipsoid", (ell.semi_major_metre, ell.semi_minor_metre, factor)
        else:
            params = (abs(t.a * t.e - t.b * t.d) * factor * factor,)
    names = dict(class_names or {})
    return PolygonPlan(
        height=height, width=width, transform=tuple(t)[:6], crs=wkt, row_edges=rows,
        col_edges=cols, keep=resolve_classes(options, names),
        class_names=tuple(sorted((int(k), str(v)) for k, v in names.items())),
        options=options, area_model=model, area_params=tuple(float(p) for p in params))


@dataclass(frozen=True)
class BlockPolygons:
    """What one block contributes: finished regions and the open parts to stitch.

    Attributes:
        window: the block's window in the scene.
        finished: regions of kept classes inside the block (touching no side shared with
            another block), already filtered by ``min_area``.
        open: parts of kept-class regions that touch a side shared with another block.
        sides: per side (order of :data:`SIDES`), an ``(n, 3)`` int64 array of runs
            ``[start, stop, part]``: pixels ``start..stop-1`` along that side (columns for
            top and bottom, rows for left and right, scene coordinates) belong to open part
            ``part``. Sides at the scene's edge have no runs.
        dropped: finished regions left out by ``min_area``.
        seconds: time spent on the block.
    """

    window: PixelWindow
    finished: Regions
    open: Regions
    sides: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    dropped: int = 0
    seconds: float = 0.0

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (for ``np.savez``, e.g. to resume a run); see :meth:`from_arrays`."""
        out: dict[str, np.ndarray] = {
            "window": np.array([self.window.row, self.window.col, self.window.height,
                                self.window.width], dtype=np.int64),
            "dropped": np.array(self.dropped), "seconds": np.array(self.seconds)}
        for name, regions in (("finished", self.finished), ("open", self.open)):
            for key in ("coords", "ring_offsets", "geom_offsets", "class_id", "pixels", "area",
                        "prob_sum"):
                value = getattr(regions, key)
                if value is not None:
                    out[f"{name}.{key}"] = value
        for side, runs in zip(SIDES, self.sides, strict=True):
            out[f"side.{side}"] = runs
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> BlockPolygons:
        """The value written by :meth:`to_arrays`."""
        def regions(name: str) -> Regions:
            def get(key: str) -> np.ndarray:
                return np.asarray(arrays[f"{name}.{key}"])

            prob = arrays.get(f"{name}.prob_sum")
            return Regions(get("coords"), get("ring_offsets"), get("geom_offsets"),
                           get("class_id"), get("pixels"), get("area"),
                           None if prob is None else np.asarray(prob))

        r, c, h, w = (int(v) for v in arrays["window"])
        return cls(PixelWindow(r, c, h, w), regions("finished"), regions("open"),
                   tuple(np.asarray(arrays[f"side.{s}"]) for s in SIDES),  # type: ignore[arg-type]
                   int(arrays["dropped"]), float(arrays["seconds"]))


def save_block(path: str | os.PathLike[str], block: BlockPolygons) -> Path:
    """Store a block's value as ``.npz`` (plain arrays, no pickle), atomically.

    Returns:
        The path written.
    """
    out = Path(path)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **block.to_arrays())  # type: ignore[arg-type]
    os.replace(tmp, out)
    return out


def load_block(path: str | os.PathLike[str]) -> BlockPolygons:
    """A block's value stored by :func:`save_block`."""
    with np.load(path, allow_pickle=False) as arrays:
        return BlockPolygons.from_arrays(dict(arrays))
