"""Raster labels: a class map in any CRS and resolution, read onto an image's grid.

A label raster (a land-cover GeoTIFF, or anything GDAL reads) gives each of its pixels a
label value. :func:`read_label_window` puts those values on a window of another grid by
nearest neighbour: each target pixel takes the value of the label pixel under its centre
(exact coordinate transforms, no approximation, so overlapping windows agree pixel for
pixel). Only the part of the label raster under the window is read. Then:

- label nodata -> ``IGNORE_INDEX``;
- target pixels outside the label raster -> ``fill`` (the ``unlabeled`` rule's value);
- other values -> class ids through a :class:`~geovision.geo.classes.ClassTable`: a class
  map's, else the raster's own values (with names from its category names or attribute
  table and colours from its colour table, when it has them; see :func:`label_classes`).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds

from geovision.errors import InputError, InputFileError
from geovision.formats import BACKGROUND, IGNORE_INDEX
from geovision.geo.classes import ClassTable, classes_by_value
from geovision.geo.grid import Grid
from geovision.geo.paths import display_name, gdal_path
from geovision.geo.raster import open_raster

#: GDAL raster attribute table field usages (GDALRATFieldUsage).
_RAT_NAME, _RAT_MINMAX = 2, 5


@dataclass(frozen=True)
class LabelRaster:
    """A label raster, described once from its header.

    Attributes:
        path: the GDAL path (see :func:`geovision.geo.paths.gdal_path`).
        grid: its grid.
        dtype: numpy dtype name of its values.
        nodata: its nodata value (None: none).
        names: class names by value, from its category names or attribute table.
        colors: ``#rrggbb`` by value, from its colour table.
        band: the band holding the labels.
    """

    path: str
    grid: Grid
    dtype: str
    nodata: float | None
    names: tuple[tuple[int, str], ...] = ()
    colors: tuple[tuple[int, str], ...] = ()
    band: int = 1

    def describe(self) -> dict[str, object]:
        """The ``labels`` record of the tile dataset for raster labels (plain values)."""
        g = self.grid
        return {"form": "raster", "path": self.path, "band": self.band,
                "crs": g.crs.to_wkt(), "transform": list(g.transform)[:6],
                "width": g.width, "height": g.height, "dtype": self.dtype,
                "nodata": None if self.nodata is None else (
                    "nan" if math.isnan(self.nodata) else float(self.nodata))}


@dataclass(frozen=True)
class LabelWindow:
    """Class ids read for one window: ``ids`` (uint8, rows x cols) and pixels dropped.

    ``dropped_at`` marks the dropped pixels (None when there are none).
    """

    ids: np.ndarray
    dropped: int
    dropped_at: np.ndarray | None = None


def open_label_raster(path: str, *, band: int = 1) -> LabelRaster:
    """Describe a label raster: grid, nodata, and its category names and colours if any.

    Raises:
        InputFileError: the file is missing or not a raster.
        InputError: it has no CRS, a rotated grid, or not that band.
    """
    spath = gdal_path(path)
    info = open_raster(spath)
    if not 1 <= band <= info.count:
        raise InputError(f"{spath}: label band {band} does not exist; the raster "
                         f"has {info.count} band(s)")
    names, colors = _categories(spath, band)
    return LabelRaster(
        path=spath, grid=info.grid,
        dtype=info.dtype, nodata=info.nodata, names=tuple(sorted(names.items())),
        colors=tuple(sorted(colors.items())), band=band)


def label_classes(raster: LabelRaster, class_map: ClassTable | None = None) -> ClassTable:
    """The classes of a label raster: the class map's if given, else by value.

    By value, the raster's values 1..254 are their own class ids (0 is background): named by
    its category names or attribute table, coloured by its colour table, and otherwise named
    by value as they are found (:meth:`ClassTable.with_seen`).
    """
    if class_map is not None:
        return class_map
    names = {v: n for v, n in raster.names if v != BACKGROUND}
    return classes_by_value(names, dict(raster.colors))


def read_label_window(
    raster: LabelRaster,
    table: ClassTable,
    grid: Grid,
    *,
    fill: int = BACKGROUND,
    ds: rasterio.io.DatasetReader | None = None,
) -> LabelWindow:
    """Class ids of the label raster on a target grid (nearest neighbour, pixel centres).

    Args:
        raster: the label raster.
        table: how its values become class ids.
        grid: the target window's grid (any CRS and resolution).
        fill: the id of target pixels outside the label raster (BACKGROUND, or IGNORE_INDEX
            when unlabelled pixels are ignored).
        ds: the label raster already open (e.g. from a per-thread cache); else it is opened.

    Returns:
        ids (uint8; IGNORE_INDEX where the labels are nodata or a value is dropped) and the
        count of dropped pixels.

    Raises:
        InputError: a value has no class (see :meth:`ClassTable.map_array`).
    """
    if ds is None:
        with rasterio.open(raster.path) as opened:
            return read_label_window(raster, table, grid, fill=fill, ds=opened)
    values, covered = _values_on_grid(raster, grid, ds)
    ids = np.full(grid.shape, fill, dtype=np.uint8)
    if not covered.any():
        return LabelWindow(ids, 0)
    nodata = _nodata_mask(values, raster.nodata)
    use = covered & ~nodata
    used = values[use]
    mapped, dropped = table.map_array(used, what=raster.path)
    ids[use] = mapped
    ids[covered & nodata] = IGNORE_INDEX
    dropped_at = None
    if dropped:
        maybe = mapped == IGNORE_INDEX
        uniq = np.unique(used[maybe])
        lost = uniq[[table.id_of(v) is None for v in uniq.tolist()]]
        dropped_at = np.zeros(grid.shape, dtype=bool)
        where = np.zeros(len(used), dtype=bool)
        where[maybe] = np.isin(used[maybe], lost)
        dropped_at[use] = where
    return LabelWindow(ids, dropped, dropped_at)


def majority_class(mask: np.ndarray, *, ignore_index: int = IGNORE_INDEX) -> int | None:
    """The class covering most pixels of a tile's mask (ignored pixels not counted).

    Ties go to the lowest id; background counts like any class. Returns None when every
    pixel is ignored.
    """
    counts = np.bincount(np.asarray(mask, dtype=np.uint8).ravel(), minlength=256)
    counts[ignore_index] = 0
    if not counts.any():
        return None
    return int(np.argmax(counts))


def _nodata_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if nodata is not None and not math.isnan(nodata):
            bad |= values == nodata
        return bad
    if nodata is None:
        return np.zeros(values.shape, dtype=bool)
    return values == nodata


def _values_on_grid(raster: LabelRaster, grid: Grid,
                    ds: rasterio.io.DatasetReader) -> tuple[np.ndarray, np.ndarray]:
    """Label values under each target pixel centre, and which target pixels lie on the raster.

    Reads the smallest window of the label raster that holds the target's footprint (plus a
    pixel), then warps it with nearest neighbour and exact transforms (``tolerance=0``).
    """
    src = raster.grid
    shifted = _aligned_offset(src, grid)
    if shifted is not None:  # same CRS, pixel size and pixel edges: a plain read
        row, col = shifted
        values = np.zeros(grid.shape, dtype=raster.dtype)
        covered = np.zeros(grid.shape, dtype=bool)
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + grid.height, src.height), min(col + grid.width, src.width)
        if r1 > r0 and c1 > c0:
            part = (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
            values[part] = ds.read(raster.band, window=Window(c0, r0, c1 - c0, r1 - r0))
            covered[part] = True
        return values, covered
    window = _source_window(src, grid)
    if window is None:
        return np.zeros(grid.shape, dtype=raster.dtype), np.zeros(grid.shape, dtype=bool)
    data = ds.read(raster.band, window=window)
    # Band 2 is all ones: where it lands, the target pixel's centre lies on the label raster
    # (one warp computes both, with the same coordinate transforms).
    pair = np.ones((2, *data.shape), dtype=np.result_type(data.dtype, np.uint8))
    pair[0] = data
    out = np.zeros((2, *grid.shape), dtype=pair.dtype)
    reproject(pair, out, src_transform=src.transform @ Affine.translation(window.col_off,
                                                                          window.row_off),
              src_crs=src.crs, src_nodata=None, dst_transform=grid.transform,
              dst_crs=grid.crs, dst_nodata=None, resampling=Resampling.nearest,
              tolerance=0.0, num_threads=1)
    return out[0].astype(raster.dtype, copy=False), out[1] == 1


def _aligned_offset(src: Grid, dst: Grid) -> tuple[int, int] | None:
    """(row, col) of ``dst``'s origin on ``src`` when both share CRS, pixel size and edges."""
    a, b = src.transform, dst.transform
    if a.b or a.d or b.b or b.d or src.crs != dst.crs:
        return None
    if not (math.isclose(a.a, b.a, rel_tol=1e-9) and math.isclose(a.e, b.e, rel_tol=1e-9)):
        return None
    col, row = (b.c - a.c) / a.a, (b.f - a.f) / a.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(row), round(col)


def _source_window(src: Grid, dst: Grid) -> Window | None:
    """The label raster's pixels under a target grid (rounded out, one pixel margin)."""
    try:
        bounds = transform_bounds(dst.crs, src.crs, *dst.bounds, densify_pts=21)
    except Exception:  # a footprint that does not transform: read where the grid may lie
        return Window(0, 0, src.width, src.height)
    if not all(map(math.isfinite, bounds)):
        return Window(0, 0, src.width, src.height)
    win = from_bounds(*bounds, transform=src.transform)
    c0, r0 = math.floor(win.col_off) - 1, math.floor(win.row_off) - 1
    c1 = math.ceil(win.col_off + win.width) + 1
    r1 = math.ceil(win.row_off + win.height) + 1
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, src.width), min(r1, src.height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _categories(path: str, band: int) -> tuple[dict[int, str], dict[int, str]]:
    """Category names (or attribute-table names) and colour-table colours, by value.

    GDAL writes a dataset's band metadata (category names, colour table, attribute table)
    into the VRT it makes of it; only the header is read.
    """
    try:
        with rasterio.open(path) as src, MemoryFile(ext=".vrt") as mem:
            rasterio.shutil.copy(src, mem.name, driver="VRT")
            mem.seek(0)
            text = mem.read().decode("utf-8", "replace")
    except RasterioIOError as exc:
        raise InputFileError(f"{display_name(path)}: cannot read its band metadata "
                             f"({str(exc).strip().splitlines()[0]})") from exc
    root = ET.fromstring(text)
    node = next((b for b in root.iter("VRTRasterBand") if b.get("band") == str(band)), None)
    if node is None:
        return {}, {}
    names: dict[int, str] = {}
    cats = node.find("CategoryNames")
    if cats is not None:
        for value, cat in enumerate(cats.findall("Category")):
            if cat.text and cat.text.strip():
                names[value] = cat.text.strip()
    rat = node.find("GDALRasterAttributeTable")
    if not names and rat is not None:
        names = _rat_names(rat)
    colors: dict[int, str] = {}
    table = node.find("ColorTable")
    if table is not None:
        for value, entry in enumerate(table.findall("Entry")):
            rgb = [int(entry.get(c, "0")) for c in ("c1", "c2", "c3")]
            colors[value] = "#{:02x}{:02x}{:02x}".format(*rgb)
    return names, colors


def _rat_names(rat: ET.Element) -> dict[int, str]:
    """Class names from a raster attribute table: its name column by its value column."""
    fields = rat.findall("FieldDefn")
    usage = {int(f.findtext("Usage", "0")): int(f.get("index", i)) for i, f in
             enumerate(fields)}
    by_name = {(f.findtext("Name") or "").lower(): int(f.get("index", i))
               for i, f in enumerate(fields)}
    name_col = usage.get(_RAT_NAME)
    if name_col is None:  # a string column named like a class name
        name_col = next((i for n, i in by_name.items() if re.search(r"class|name|label", n)
                         and fields[i].findtext("Type") == "2"), None)
    if name_col is None:
        return {}
    value_col = usage.get(_RAT_MINMAX, by_name.get("value"))
    row0 = float(rat.get("Row0Min", "0"))
    size = float(rat.get("BinSize", "1"))
    names: dict[int, str] = {}
    for k, row in enumerate(rat.findall("Row")):
        cells = [c.text or "" for c in row.findall("F")]
        index = int(row.get("index", k))
        try:
            value = float(cells[value_col]) if value_col is not None else row0 + index * size
        except (ValueError, IndexError):
            continue
        name = cells[name_col].strip() if name_col < len(cells) else ""
        if name and value.is_integer():
            names[int(value)] = name
    return names
