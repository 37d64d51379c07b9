"""Label geometries of every type made burnable: polygons, and points and lines with a buffer.

Polygons cover pixels by themselves. Points and lines have no area, so ``buffer`` (in pixels
of the image grid) gives them one: a point becomes a disc of that radius and a line a
corridor of that half-width, both measured in pixels, so on a grid whose pixels are not
square (degrees) a disc is an ellipse in map units. For detection, a point becomes the box
of side ``2 * buffer`` pixels centred on it and a line the bounding box of its corridor (its
bounds grown by ``buffer`` pixels on each side, so that a straight horizontal line still
gives a box). Without a buffer, labels holding points or lines are refused
(:func:`check_buffer`): they are never dropped silently.

Geometry collections are split into their parts first (:func:`explode_collections`), and each
part is treated by its own type; multi-part geometries (MultiPolygon, MultiLineString,
MultiPoint) stay one feature.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from geovision.errors import InputError

POLYGON, LINE, POINT = "polygon", "line", "point"
#: shapely type id -> kind of label geometry.
KIND_OF_TYPE = {0: POINT, 4: POINT, 1: LINE, 2: LINE, 5: LINE, 3: POLYGON, 6: POLYGON}
_COLLECTION = 7


def explode_collections(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split geometry collections (also nested ones) into their parts, in file order.

    Args:
        geoms: shapely geometries.

    Returns:
        ``(parts, index)``: the geometries with every collection replaced by its non-empty
        parts, and for each the index of the feature it came from (to carry its class).
    """
    geoms = np.asarray(geoms, dtype=object)
    index = np.arange(len(geoms))
    while True:
        coll = shapely.get_type_id(geoms) == _COLLECTION
        if not coll.any():
            break
        parts, owner = shapely.get_parts(geoms[coll], return_index=True)
        keep = ~shapely.is_empty(parts)
        merged = np.concatenate([geoms[~coll], parts[keep]])
        merged_index = np.concatenate([index[~coll], index[coll][owner[keep]]])
        order = np.argsort(merged_index, kind="stable")
        geoms, index = merged[order], merged_index[order]
    return geoms, index


def kinds(geoms: np.ndarray) -> np.ndarray:
    """The kind of each geometry: ``polygon``, ``line`` or ``point`` (collections: raise).

    Raises:
        ValueError: a geometry collection is left (split them first).
    """
    types = shapely.get_type_id(np.asarray(geoms, dtype=object))
    if (types == _COLLECTION).any():
        raise ValueError("split geometry collections first (explode_collections)")
    out = np.full(len(types), POLYGON, dtype=object)
    for t in np.unique(types).tolist():  # one lookup per geometry type present
        out[types == t] = KIND_OF_TYPE.get(int(t), POLYGON)
    return out


def check_buffer(geoms: np.ndarray, buffer: float | None, what: str = "labels") -> None:
    """Refuse points and lines without a buffer, and a buffer that is not positive.

    Args:
        geoms: label geometries, collections already split.
        buffer: the buffer in pixels (None: not given).
        what: names the input in messages (the label file).

    Raises:
        InputError: naming ``--buffer`` and how many points and lines there are.
    """
    if buffer is not None and not buffer > 0:
        raise InputError(f"--buffer: {buffer} must be a positive number of pixels")
    if buffer is not None:
        return
    k = kinds(geoms)
    n_points, n_lines = int((k == POINT).sum()), int((k == LINE).sum())
    if n_points or n_lines:
        found = " and ".join(f"{n} {name}{'s' if n != 1 else ''}" for n, name in
                             ((n_points, "point"), (n_lines, "line")) if n)
        raise InputError(
            f"{what}: holds {found}, which cover no area; give --buffer PX to turn points "
            "into discs and lines into corridors of PX pixels (boxes of side 2*PX for "
            "detection), or leave them out of the file")


def to_areas(geoms: np.ndarray, buffer: float | None, res: Sequence[float]) -> np.ndarray:
    """Geometries to burn into a mask: polygons as they are, points and lines buffered.

    Args:
        geoms: label geometries in the image CRS, collections already split.
        buffer: radius in pixels of the image grid (None: there must be no point or line).
        res: the image's pixel size (x, y) in CRS units.

    Returns:
        Polygonal geometries, one per input geometry, in the same order.

    Raises:
        InputError: points or lines without a buffer.
    """
    geoms = np.asarray(geoms, dtype=object)
    check_buffer(geoms, buffer)
    k = kinds(geoms)
    out = geoms.copy()
    thin = k != POLYGON
    if thin.any() and buffer is not None:
        scale = np.array([abs(res[0]), abs(res[1])], dtype=np.float64)
        in_pixels = shapely.transform(geoms[thin], lambda xy: xy / scale)
        out[thin] = shapely.transform(shapely.buffer(in_pixels, buffer),
                                      lambda xy: xy * scale)
    return out


def to_boxes(geoms: np.ndarray, buffer: float | None, res: Sequence[float]) -> np.ndarray:
    """Detection boxes in map units: ``(xmin, ymin, xmax, ymax)`` per geometry.

    Polygons give their bounds; points and lines their bounds grown by ``buffer`` pixels on
    each side (a point: a box of side ``2 * buffer`` pixels centred on it).

    Raises:
        InputError: points or lines without a buffer.
    """
    geoms = np.asarray(geoms, dtype=object)
    check_buffer(geoms, buffer)
    bounds = shapely.bounds(geoms).reshape(-1, 4).astype(np.float64)
    if buffer is not None:
        thin = kinds(geoms) != POLYGON
        grow = np.array([-abs(res[0]), -abs(res[1]), abs(res[0]), abs(res[1])]) * buffer
        bounds[thin] += grow
    return bounds
