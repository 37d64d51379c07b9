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
from geovision.geo.classes import ClassTable, classes_from_values, single_class
from geovision.geo.shapes import POLYGON, explode_collections, kinds

log = logging.getLogger(__name__)


@dataclass
class Labels:
    """Vector labels ready to burn: repaired geometries with a class id each.

    Attributes:
        frame: GeoDataFrame with columns ``geometry`` and ``class_id`` (int16: a class id,
            or 0 / 255 where a class map makes a value background or ignored), in ``crs``;
            geometry collections are split into their parts, each carrying its feature's id.
        table: how label values became class ids (:class:`~geovision.geo.classes.ClassTable`).
        path: the file read.
        layer: the layer read (None for single-layer formats).
        class_field: the class field, or None when every feature is class 1.
        features: features in the file.
        repaired: invalid geometries made valid.
        dropped: count of features left out, by reason.
    """

    frame: gpd.GeoDataFrame
    table: ClassTable
    path: str
    layer: str | None
    class_field: str | None
    features: int
    repaired: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def classes(self) -> list[dict[str, Any]]:
        """Class records (``attrs.classes``): id 0 ``background`` first, then by id."""
        return self.table.records()

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


def read_labels(
    path: str | os.PathLike[str], *, layer: str | None = None, class_field: str | None = None,
    class_map: ClassTable | None = None, thin: bool = False,
) -> Labels:
    """Read a vector file of labels, repair its geometries and number its classes.

    Class ids: with ``class_map``, the ids it gives the values of ``class_field`` (values it
    does not list are dropped and counted as ``unlisted_value``, or made background or
    ignored, as the map says); else the distinct values of ``class_field``, sorted
    (numerically when every value is a number), become 1..K; without a field every feature
    is class 1, named after the layer. Geometry collections are split into their parts.

    Args:
        path: a vector file OGR reads.
        layer: the layer (None: the first).
        class_field: the field holding the class values (None: one class).
        class_map: a class map (``--class-map``) numbering the field's values.
        thin: keep points and lines (they are buffered later); else they are dropped and
            counted as ``not_polygon``.

    Raises:
        InputFileError: the file is missing or not a vector format OGR reads.
        InputError: the layer or field does not exist, the file holds no features, it has no
            CRS, a class map is given without a field, or the classes do not fit.
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
    if class_map is not None and class_field is None:
        raise InputError(f"{spath}: --class-map maps the values of a field; give --class-field "
                         f"(fields are: {', '.join(fields) or '(none)'})")
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
    invalid = ~shapely.is_valid(arr)
    repaired = int(invalid.sum())
    if repaired:
        arr = arr.copy()
        arr[invalid] = shapely.make_valid(arr[invalid])
        log.info("%s: repaired %d invalid geometries", spath, repaired)
    parts, owner = explode_collections(arr)
    values = frame[class_field].to_numpy()[owner] if class_field is not None else None
    if not thin:
        # Points and lines carry no area: without a buffer they are left out.
        areal = kinds(parts) == POLYGON if len(parts) else np.zeros(0, dtype=bool)
        lost = np.setdiff1d(np.arange(len(arr)), owner[areal])
        if len(lost):
            dropped["not_polygon"] += len(lost)
        parts, owner = parts[areal], owner[areal]
        values = values[areal] if values is not None else None

    what = f"{spath}: field '{class_field}'"
    if class_map is not None:
        assert values is not None  # a class map needs a field (checked above)
        table = class_map
        class_ids = table.ids_of(values)
        unlisted = class_ids < 0
        if unlisted.any():
            dropped["unlisted_value"] += len(np.unique(owner[unlisted]))
            parts, owner, class_ids = parts[~unlisted], owner[~unlisted], class_ids[~unlisted]
    elif values is not None:
        table = classes_from_values(values.tolist(), what=what)
        class_ids = table.ids_of(values)
    else:
        table = single_class(chosen or "object")
        class_ids = np.ones(len(parts), dtype=np.int16)

    out = gpd.GeoDataFrame(
        {"class_id": class_ids.astype(np.int16)}, geometry=parts, crs=frame.crs
    ).reset_index(drop=True)
    if len(out) == 0:
        kind = "features with a class" if thin else "polygon features with a class"
        raise InputError(f"{spath}: no {kind}; nothing to tile")
    return Labels(
        frame=out,
        table=table,
        path=spath,
        layer=chosen,
        class_field=class_field,
        features=features,
        repaired=repaired,
        dropped={k: v for k, v in dropped.items() if v},
    )


def is_vector(path: str) -> bool:
    """Whether OGR reads ``path`` as a vector file with at least one layer."""
    try:
        return len(pyogrio.list_layers(path)) > 0
    except Exception:
        return False


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
