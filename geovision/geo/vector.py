"""Reading vector labels, repairing them and turning a field into class ids."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from pyproj import CRS as ProjCRS

from geovision.errors import InputError, InputFileError
from geovision.formats import IGNORE_INDEX
from geovision.geo.classes import BACKGROUND_NAME, MAX_CLASS_ID

log = logging.getLogger(__name__)

#: Colors given to classes 1..K in order (class 0, background, is black).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
)


@dataclass
class Labels:
    """Vector labels ready to burn: repaired geometries with a class id each.

    Attributes:
        frame: GeoDataFrame with columns ``geometry`` and ``class_id`` (int, >= 1), in ``crs``.
        classes: the class table, id 0 ``background`` first.
        path: the file read.
        layer: the layer read (None for single-layer formats).
        class_field: the class field, or None when every feature is class 1.
        features: features in the file.
        repaired: invalid geometries made valid.
        dropped: count of features left out, by reason.
    """

    frame: gpd.GeoDataFrame
    classes: list[dict[str, Any]]
    path: str
    layer: str | None
    class_field: str | None
    features: int
    repaired: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The ``labels`` record of the tile dataset format."""
        crs = self.frame.crs
        return {
            "path": self.path,
            "layer": self.layer,
            "field": self.class_field,
            "crs": crs.to_wkt() if crs is not None else None,
            "features": self.features,
            "repaired": self.repaired,
            "dropped": dict(self.dropped),
        }


def class_table(names: list[str]) -> list[dict[str, Any]]:
    """Class records: background 0, then ``names`` as 1..K with palette colors."""
    table: list[dict[str, Any]] = [{"id": 0, "name": "background", "color": "#000000"}]
    for i, name in enumerate(names, start=1):
        table.append({"id": i, "name": str(name), "color": PALETTE[(i - 1) % len(PALETTE)]})
    return table


def read_labels(
    path: str | os.PathLike[str], *, layer: str | None = None, class_field: str | None = None
) -> Labels:
    """Read a vector file of labels, repair its geometries and number its classes.

    Class ids: the distinct values of ``class_field``, sorted, become 1..K (0 is background);
    without a field every feature is class 1, named after the layer.

    Raises:
        InputFileError: the file is missing or not a vector format OGR reads.
        InputError: the layer or field does not exist, the file holds no features, or it has
            no CRS.
    """
    spath = str(path)
    if not os.path.exists(spath) and "://" not in spath and not spath.startswith("/vsi"):
        raise InputFileError(f"{spath}: file not found")
    try:
        layers = [name for name, _ in pyogrio.list_layers(spath)]
    except Exception as exc:
        raise InputFileError(
            f"{spath}: not a vector file OGR can read ({str(exc).splitlines()[0]})"
        ) from exc
    if layer is not None and layer not in layers:
        raise InputError(f"{spath}: layer '{layer}' not found; layers are: {', '.join(layers)}")
    if layer is None and len(layers) > 1:
        log.info("%s: %d layers, reading the first, '%s' (use --layer)", spath, len(layers),
                 layers[0])
    chosen = layer if layer is not None else (layers[0] if layers else None)
    try:
        info = pyogrio.read_info(spath, layer=chosen)
        frame = gpd.read_file(spath, layer=chosen, engine="pyogrio")
    except Exception as exc:
        raise InputFileError(
            f"{spath}: cannot read layer '{chosen}' ({str(exc).splitlines()[0]})"
        ) from exc
    fields = [str(f) for f in info["fields"]]
    if class_field is not None and class_field not in fields:
        raise InputError(
            f"{spath}: field '{class_field}' not found; fields are: "
            f"{', '.join(fields) or '(none)'} (use --class-field)"
        )
    if len(frame) == 0:
        raise InputError(f"{spath}: the label file holds no features; nothing to tile")
    if frame.crs is None:
        raise InputError(
            f"{spath}: labels have no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:XXXX) so they "
            "can be placed on the rasters"
        )
    features = len(frame)
    dropped: Counter[str] = Counter()

    geoms = frame.geometry.values
    empty = geoms.isna() | shapely.is_empty(np.asarray(geoms))
    if class_field is not None:
        nulls = frame[class_field].isna().to_numpy()
    else:
        nulls = np.zeros(len(frame), dtype=bool)
    dropped["empty_geometry"] += int(empty.sum())
    dropped["null_class"] += int((nulls & ~empty).sum())
    frame = frame[~empty & ~nulls]

    arr = np.asarray(frame.geometry.values)
    _check_collections(arr, spath)
    invalid = ~shapely.is_valid(arr)
    repaired = int(invalid.sum())
    if repaired:
        arr = arr.copy()
        arr[invalid] = shapely.make_valid(arr[invalid])
        log.info("%s: repaired %d invalid geometries", spath, repaired)
    arr = _polygonal_parts(arr)
    kinds = shapely.get_type_id(arr)
    # Points and lines carry no area; keep polygons (boxes work from any geometry's bounds).
    areal = np.isin(kinds, [3, 6])
    if not areal.all():
        dropped["not_polygon"] += int((~areal).sum())
        if areal.any():
            log.warning("%s: %d point or line features cover no area and are not used",
                        spath, int((~areal).sum()))

    if class_field is not None:
        values = frame[class_field].to_numpy()
        names = sorted({_class_name(v) for v in values[areal]})
        _check_class_names(names, spath, class_field)
        ids = {name: i for i, name in enumerate(names, start=1)}
        class_ids = np.array([ids.get(_class_name(v), 0) for v in values], dtype=np.int16)
    else:
        names = [chosen or "object"]
        class_ids = np.ones(len(frame), dtype=np.int16)

    out = gpd.GeoDataFrame(
        {"class_id": class_ids[areal]}, geometry=arr[areal], crs=frame.crs
    ).reset_index(drop=True)
    if len(out) == 0:
        raise InputError(f"{spath}: no polygon features with a class; nothing to tile")
    return Labels(
        frame=out,
        classes=class_table(names),
        path=spath,
        layer=chosen,
        class_field=class_field,
        features=features,
        repaired=repaired,
        dropped={k: v for k, v in dropped.items() if v},
    )


def _check_collections(geoms: np.ndarray, path: str) -> None:
    """Refuse geometry collections that hold points or lines (they cover no area).

    Their polygon parts are labels like any polygon; a line or point part would be burned as
    a thin trace, while the same line on its own is refused, so such parts are refused here
    too rather than burned or dropped silently.

    Raises:
        InputError: naming the first such feature and what its collection holds.
    """
    from geovision.geo.shapes import LINE, POINT, explode_collections, kinds

    coll = shapely.get_type_id(geoms) == 7
    if not coll.any():
        return
    parts, owner = explode_collections(geoms[coll])
    if not len(parts):
        return
    k = kinds(parts)
    thin = (k == POINT) | (k == LINE)
    if not thin.any():
        return
    first = int(np.flatnonzero(coll)[owner[np.flatnonzero(thin)[0]]])
    n_points, n_lines = int((k == POINT).sum()), int((k == LINE).sum())
    found = " and ".join(f"{n} {name}{'s' if n != 1 else ''}" for n, name in
                         ((n_lines, "line"), (n_points, "point")) if n)
    raise InputError(
        f"{path}: geometry collections hold {found} (the first in feature {first}), which "
        "cover no area; tiles are labelled by polygons only: remove those parts, or buffer "
        "them into polygons first")


def _polygonal_parts(geoms: np.ndarray) -> np.ndarray:
    """Geometry collections (from the file or from repairs) reduced to their polygons."""
    coll = np.flatnonzero(shapely.get_type_id(geoms) == 7)
    if not len(coll):
        return geoms
    out = geoms.copy()
    for i in coll:
        parts = shapely.get_parts(shapely.get_parts(geoms[i]))  # nested collections too
        polys = [p for p in parts if shapely.get_type_id(p) in (3, 6) and not p.is_empty]
        out[i] = (shapely.union_all(polys) if polys else shapely.GeometryCollection())
    return out


def _check_class_names(names: list[str], path: str, class_field: str) -> None:
    """Refuse class values that cannot be class ids 1..254 or clash with class 0's name.

    Raises:
        InputError: more than 254 distinct values (ids are stored in 8 bits, 0 is background
            and 255 ignore_index), or a value named ``background``.
    """
    if len(names) > MAX_CLASS_ID:
        raise InputError(
            f"{path}: field '{class_field}' has {len(names)} distinct values; at most "
            f"{MAX_CLASS_ID} classes fit (class ids are stored in 8 bits: 0 is background, "
            f"{IGNORE_INDEX} is ignore_index); merge values into fewer classes in the file")
    if BACKGROUND_NAME in names:
        raise InputError(
            f"{path}: field '{class_field}' has the value 'background', the name of class 0 "
            "(pixels no label covers); rename that value in the file (e.g. to "
            "'background_class'), or leave those features out to make them background")


def _class_name(value: Any) -> str:
    """Field values as class names: 2.0 and 2 name the same class, '2'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (np.floating,)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def to_crs(frame: gpd.GeoDataFrame, crs: Any) -> gpd.GeoDataFrame:
    """Reproject labels to a raster's CRS (a no-op when they are equal)."""
    target = ProjCRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    if frame.crs is not None and ProjCRS.from_user_input(frame.crs).equals(target):
        return frame
    out = frame.to_crs(target)
    # Reprojection can leave slivers invalid; keep geometries burnable.
    arr = np.asarray(out.geometry.values)
    bad = ~shapely.is_valid(arr)
    if bad.any():
        arr = arr.copy()
        arr[bad] = shapely.make_valid(arr[bad])
        out = out.set_geometry(gpd.GeoSeries(arr, crs=out.crs, index=out.index))
    return out
