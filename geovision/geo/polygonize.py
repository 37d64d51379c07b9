"""The block step: one block of a class raster to finished regions and open parts.

:func:`polygonize_block` traces the block's regions with GDAL's polygonizer
(``rasterio.features.shapes``, 4-connectivity), measures each region from its rings
(pixels, m², probability sum; see :mod:`geovision.geo.polygons`), and sorts the regions into
finished ones and open parts (those touching a side shared with another block), with the runs
of pixels each open part holds along each such side. With ``simplify``, the block's polygons
(all classes and nodata, so that every edge between two of them is shared) are noded and
simplified together by ``shapely.coverage_simplify`` with the block's outline held fixed: every
edge is simplified once, in one block, and both polygons along it get the same edge, while
parts still meet their neighbours across seams along exact pixel edges.

The result is a plain value (numpy arrays), cheap to pickle to and from Dask workers or other
processes.
"""

from __future__ import annotations

import itertools
import os
import time

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.features import shapes
from rasterio.windows import Window

from geovision.errors import InputError
from geovision.geo.polygons import BlockPolygons, PolygonPlan
from geovision.geo.raster import valid_mask
from geovision.geo.regions import Regions
from geovision.geo.windows import PixelWindow

#: Class id that marks nodata in the class rasters geovision writes.
NODATA = 255
#: Value given to pixels outside the block (or invalid) when finding junctions.
_OUTSIDE = np.iinfo(np.int32).min
#: Dtypes GDAL's polygonizer takes as they are.
_TRACE_DTYPES = (np.uint8, np.uint16, np.int16, np.int32)


def polygonize_block(plan: PolygonPlan, window: PixelWindow, classes: np.ndarray,
                     probabilities: np.ndarray | None = None, *,
                     valid: np.ndarray | None = None, nodata: int | None = NODATA,
                     ) -> BlockPolygons:
    """Polygonize one block of the plan's grid.

    Args:
        plan: the scene's plan (grid, classes kept, area model, options).
        window: the block's window; one of ``plan.windows()``.
        classes: ``(rows, cols)`` integer class ids of the block.
        probabilities: per-class probabilities ``(K, rows, cols)`` (band ``k`` is class
            ``k``), or the probability of each pixel's own class ``(rows, cols)``; values
            0..1 (NaN where invalid is fine).
        valid: pixels holding data (default: every pixel not equal to ``nodata``).
        nodata: class value of pixels without data (None: none).

    Returns:
        The block's finished regions, open parts and seam runs.

    Raises:
        InputError: the arrays do not match the window, the class ids do not fit in 32 bits,
            or a kept class has no probability band.
        ValueError: the window is not a block of the plan.
    """
    start = time.perf_counter()
    index = plan.block_index(window)
    classes = np.asarray(classes)
    if classes.shape != (window.height, window.width):
        raise InputError(f"block {window}: class array has shape {classes.shape}, expected "
                         f"{(window.height, window.width)}")
    classes = _traceable(classes)
    ok = np.ones(classes.shape, bool) if nodata is None else classes != nodata
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    kept_px = ok & _kept_pixels(plan, classes)
    simplify = plan.options.simplify > 0
    origin = Affine.translation(window.col, window.row)
    if simplify:
        work = classes.astype(np.int32)
        work[~ok] = _OUTSIDE + 1
        traced = _trace(work, None, origin)
        keep = plan.kept(traced[3]) & (traced[3] != _OUTSIDE + 1)
    else:
        traced = _trace(classes, kept_px, origin)
        keep = np.ones(len(traced[3]), bool)
    coords, ring_offsets, geom_offsets, values = traced
    every = Regions(coords, ring_offsets, geom_offsets, values, np.zeros(len(values), np.int64),
                    np.zeros(len(values)), None)
    regions = every.take(keep)
    q = _class_probability(plan, window, classes, kept_px, probabilities)
    regions = _measure(plan, window, regions, q)
    neighbours = plan.neighbours(index)
    runs = _side_runs(window, regions, [n is not None for n in neighbours])
    is_open = np.zeros(len(regions), bool)
    for r in runs:
        is_open[r[:, 2]] = True
    if simplify:
        simple = _simplify(every, work, window, plan.options.simplify)
        regions = regions.with_geometries(simple[keep])
    large = _large_enough(plan, regions)
    finished = regions.take(~is_open & large)
    open_idx = np.flatnonzero(is_open)
    renumber = np.full(len(regions), -1, np.int64)
    renumber[open_idx] = np.arange(len(open_idx))
    sides = tuple(np.column_stack([r[:, 0], r[:, 1], renumber[r[:, 2]]]) for r in runs)
    return BlockPolygons(window, finished, regions.take(open_idx), sides,  # type: ignore[arg-type]
                         int((~is_open & ~large).sum()), time.perf_counter() - start)


def _traceable(classes: np.ndarray) -> np.ndarray:
    """The class array in a dtype GDAL's polygonizer takes."""
    if classes.dtype in _TRACE_DTYPES:
        return classes
    if not np.issubdtype(classes.dtype, np.integer):
        raise InputError(f"class raster has dtype {classes.dtype}; class ids must be integers")
    if classes.dtype == np.int8:
        return classes.astype(np.int16)
    info = np.iinfo(np.int32)
    if classes.size and (classes.min() < info.min or classes.max() > info.max):
        raise InputError(f"class ids {classes.min()}..{classes.max()} do not fit in 32 bits")
    return classes.astype(np.int32)


def _kept_pixels(plan: PolygonPlan, classes: np.ndarray) -> np.ndarray:
    """Pixels whose class is vectorized (a lookup table for 8-bit classes)."""
    if classes.dtype == np.uint8:
        return plan.kept(np.arange(256))[classes]
    return plan.kept(classes)


def _trace(values: np.ndarray, mask: np.ndarray | None, origin: Affine,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Regions of equal value (4-connected) as ragged arrays in scene pixel coordinates.

    Returns:
        ``(coords, ring_offsets, geom_offsets, values)``.
    """
    ring_counts: list[int] = []
    ring_lengths: list[int] = []
    found: list[float] = []
    rings: list[list[tuple[float, float]]] = []
    for geom, value in shapes(values, mask=mask, connectivity=4, transform=origin):
        polygon = geom["coordinates"]
        ring_counts.append(len(polygon))
        found.append(value)
        for ring in polygon:
            ring_lengths.append(len(ring))
            rings.append(ring)
    n = sum(ring_lengths)
    flat = itertools.chain.from_iterable(itertools.chain.from_iterable(rings))
    coords = np.fromiter(flat, dtype=np.float64, count=2 * n).reshape(n, 2)
    ring_offsets = np.zeros(len(ring_lengths) + 1, np.int64)
    np.cumsum(ring_lengths, out=ring_offsets[1:])
    geom_offsets = np.zeros(len(ring_counts) + 1, np.int64)
    np.cumsum(ring_counts, out=geom_offsets[1:])
    return coords, ring_offsets, geom_offsets, np.asarray(found).astype(np.int64)


def _class_probability(plan: PolygonPlan, window: PixelWindow, classes: np.ndarray,
                       kept_px: np.ndarray, probabilities: np.ndarray | None,
                       ) -> np.ndarray | None:
    """Probability of each kept pixel's own class (0 elsewhere), or None."""
    if probabilities is None:
        return None
    p = np.asarray(probabilities)
    if p.ndim == 3:
        if p.shape[1:] != classes.shape:
            raise InputError(f"block {window}: probabilities have shape {p.shape}, expected "
                             f"(classes, {classes.shape[0]}, {classes.shape[1]})")
        top = int(classes[kept_px].max()) if kept_px.any() else -1
        if top >= p.shape[0] or (kept_px.any() and int(classes[kept_px].min()) < 0):
            raise InputError(f"block {window}: class id {top} has no probability band (the "
                             f"probabilities have {p.shape[0]} bands, band k+1 is class k)")
        ids = np.where(kept_px, classes, 0).astype(np.intp)
        q = np.take_along_axis(p, ids[None], axis=0)[0]
    elif p.shape == classes.shape:
        q = p
    else:
        raise InputError(f"block {window}: probabilities have shape {p.shape}, expected "
                         f"{classes.shape} or (classes, {classes.shape[0]}, "
                         f"{classes.shape[1]})")
    q = np.where(kept_px, q.astype(np.float64), 0.0)
    return np.nan_to_num(q, copy=False, nan=0.0)


def _edges(coords: np.ndarray, ring_offsets: np.ndarray,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ring edges as ``(ring, x0, y0, x1, y1)`` int64 arrays (closed rings: no wrap edge)."""
    n_rings = len(ring_offsets) - 1
    ring_of = np.repeat(np.arange(n_rings), np.diff(ring_offsets))
    xy = coords.astype(np.int64)
    inside = ring_of[:-1] == ring_of[1:]
    return (ring_of[:-1][inside], xy[:-1, 0][inside], xy[:-1, 1][inside], xy[1:, 0][inside],
            xy[1:, 1][inside])


def _measure(plan: PolygonPlan, window: PixelWindow, regions: Regions,
             q: np.ndarray | None) -> Regions:
    """``regions`` with pixels, area and probability sums filled in (Green's theorem)."""
    if len(regions) == 0:
        return Regions.empty(q is not None)
    ring, x0, y0, x1, y1 = _edges(regions.coords, regions.ring_offsets)
    vertical = (x0 == x1) & (y0 != y1)
    ring, x, ya, yb = ring[vertical], x0[vertical] - window.col, y0[vertical] - window.row, (
        y1[vertical] - window.row)
    n_rings = len(regions.ring_offsets) - 1
    signed = np.bincount(ring, weights=(x * (yb - ya)).astype(np.float64), minlength=n_rings)
    ring_sign = np.sign(signed)
    first = np.zeros(n_rings, bool)
    first[regions.geom_offsets[:-1]] = True
    weight = np.where(first, 1.0, -1.0)
    poly_of_ring = np.repeat(np.arange(len(regions)), np.diff(regions.geom_offsets))

    def total(per_edge: np.ndarray) -> np.ndarray:
        enclosed = np.bincount(ring, weights=per_edge, minlength=n_rings) * ring_sign
        return np.bincount(poly_of_ring, weights=enclosed * weight, minlength=len(regions))

    pixels = np.rint(total(x * (yb - ya).astype(np.float64))).astype(np.int64)
    rows = np.zeros(window.height + 1)
    np.cumsum(plan.pixel_areas(window.row, window.height), out=rows[1:])
    area = total(x * (rows[yb] - rows[ya]))
    prob_sum = None
    if q is not None:
        table = np.zeros((window.height + 1, window.width + 1))
        np.cumsum(np.cumsum(q, axis=0), axis=1, out=table[1:, 1:])
        prob_sum = total(table[yb, x] - table[ya, x])
    return Regions(regions.coords, regions.ring_offsets, regions.geom_offsets,
                   regions.class_id, pixels, area, prob_sum)


def _side_runs(window: PixelWindow, regions: Regions, shared: list[bool]) -> list[np.ndarray]:
    """Runs ``[start, stop, region]`` of pixels along each shared side (order of SIDES)."""
    empty = np.zeros((0, 3), np.int64)
    if len(regions) == 0 or not any(shared):
        return [empty] * 4
    ring, x0, y0, x1, y1 = _edges(regions.coords, regions.ring_offsets)
    region = np.repeat(np.arange(len(regions)), np.diff(regions.geom_offsets))[ring]
    bottom, right = window.row + window.height, window.col + window.width
    horizontal, vertical = (y0 == y1) & (x0 != x1), (x0 == x1) & (y0 != y1)
    lines = ((horizontal, y0, window.row, x0, x1), (horizontal, y0, bottom, x0, x1),
             (vertical, x0, window.col, y0, y1), (vertical, x0, right, y0, y1))
    out = []
    for is_shared, (kind, at, line, a, b) in zip(shared, lines, strict=True):
        if not is_shared:
            out.append(empty)
            continue
        on = kind & (at == line)
        runs = np.column_stack([np.minimum(a[on], b[on]), np.maximum(a[on], b[on]),
                                region[on]])
        out.append(runs[np.argsort(runs[:, 0], kind="stable")])
    return out


def _large_enough(plan: PolygonPlan, regions: Regions) -> np.ndarray:
    """Regions that pass ``min_area`` (in pixels or m²)."""
    opts = plan.options
    if opts.min_area <= 0:
        return np.ones(len(regions), bool)
    measure = regions.pixels if opts.min_area_unit == "pixels" else regions.area
    return measure >= opts.min_area


def _simplify(every: Regions, work: np.ndarray, window: PixelWindow,
              tolerance: float) -> np.ndarray:
    """Coverage-simplified polygons of all the block's regions, its outline held fixed."""
    if len(every) == 0:
        return np.empty(0, dtype=object)
    local = every.coords - (window.col, window.row)
    coords, ring_offsets = _node(local, every.ring_offsets, _junctions(work))
    noded = Regions(coords, ring_offsets, every.geom_offsets, every.class_id, every.pixels,
                    every.area, None)
    simple = shapely.coverage_simplify(noded.geometries(), tolerance, simplify_boundary=False)
    shift = np.array([window.col, window.row], dtype=np.float64)
    return shapely.transform(simple, lambda xy: xy + shift)


def _junctions(values: np.ndarray) -> np.ndarray:
    """``(rows + 1, cols + 1)`` mask of pixel corners where three or more edges meet.

    An edge runs between two 4-neighbours of different value; a corner has up to four (up,
    down, left, right), counting pixels outside the block as one more value. GDAL's polygons
    have vertices only where their outline turns, so a polygon passing straight through a
    junction lacks the vertex its neighbours have there; coverage tools need it.
    """
    p = np.pad(values, 1, constant_values=_OUTSIDE)
    ul, ur, dl, dr = p[:-1, :-1], p[:-1, 1:], p[1:, :-1], p[1:, 1:]
    degree = ((ul != ur).astype(np.uint8) + (dl != dr) + (ul != dl) + (ur != dr))
    return degree >= 3


def _node(coords: np.ndarray, ring_offsets: np.ndarray, nodes: np.ndarray,
          ) -> tuple[np.ndarray, np.ndarray]:
    """Rings with a vertex added at every junction that lies inside one of their edges."""
    _, x0, y0, x1, y1 = _edges(coords, ring_offsets)
    n_rings = len(ring_offsets) - 1
    ring_of = np.repeat(np.arange(n_rings), np.diff(ring_offsets))
    edge_pos = np.flatnonzero(ring_of[:-1] == ring_of[1:])  # index of each edge's first vertex
    along_x = np.zeros((nodes.shape[0], nodes.shape[1] + 1), np.int32)
    np.cumsum(nodes, axis=1, out=along_x[:, 1:])
    along_y = np.zeros((nodes.shape[0] + 1, nodes.shape[1]), np.int32)
    np.cumsum(nodes, axis=0, out=along_y[1:, :])
    lo_x, hi_x = np.minimum(x0, x1), np.maximum(x0, x1)
    lo_y, hi_y = np.minimum(y0, y1), np.maximum(y0, y1)
    horizontal = y0 == y1
    count = np.where(horizontal,
                     along_x[y0, hi_x] - along_x[y0, np.minimum(lo_x + 1, hi_x)],
                     along_y[hi_y, x0] - along_y[np.minimum(lo_y + 1, hi_y), x0])
    todo = np.flatnonzero(count > 0)
    if len(todo) == 0:
        return coords, ring_offsets
    positions: list[np.ndarray] = []
    points: list[np.ndarray] = []
    for k in todo:
        if horizontal[k]:
            xs = np.flatnonzero(nodes[y0[k], lo_x[k] + 1:hi_x[k]]) + lo_x[k] + 1
            xs = xs if x1[k] > x0[k] else xs[::-1]
            pts = np.column_stack([xs, np.full(len(xs), y0[k])])
        else:
            ys = np.flatnonzero(nodes[lo_y[k] + 1:hi_y[k], x0[k]]) + lo_y[k] + 1
            ys = ys if y1[k] > y0[k] else ys[::-1]
            pts = np.column_stack([np.full(len(ys), x0[k]), ys])
        positions.append(np.full(len(pts), edge_pos[k] + 1))
        points.append(pts)
    where = np.concatenate(positions)
    coords = np.insert(coords, where, np.concatenate(points).astype(np.float64), axis=0)
    return coords, ring_offsets + np.searchsorted(where, ring_offsets, side="left")


def read_and_polygonize(class_path: str, prob_path: str | None, plan: PolygonPlan,
                        window: PixelWindow) -> tuple[BlockPolygons, int, float]:
    """Read one block of the class raster (and probabilities) and polygonize it.

    The rasters are opened for this block only: closing them drops their decoded tiles from
    GDAL's block cache, which would otherwise fill up (to 5% of RAM by default) with tiles
    that are never read again, making a worker's memory grow with the raster.

    Returns:
        The block's value, this process's id and its peak resident memory in MB.
    """
    win = Window(window.col, window.row, window.width, window.height)
    with rasterio.open(class_path) as ds:
        classes = ds.read(1, window=win)
        valid = valid_mask(ds, [1], win, classes[None])
    q = None
    if prob_path is not None:
        with rasterio.open(prob_path) as pds:
            q = _own_class_probability(pds, win, classes, valid, plan)
    block = polygonize_block(plan, window, classes, q, valid=valid, nodata=None)
    return block, os.getpid(), _peak_rss_mb()


def _own_class_probability(ds: rasterio.io.DatasetReader, win: Window, classes: np.ndarray,
                           valid: np.ndarray, plan: PolygonPlan) -> np.ndarray:
    """Probability of each pixel's own class, reading only the bands of classes present."""
    kept = valid & plan.kept(classes)
    present = np.unique(classes[kept])
    q = np.zeros(classes.shape, np.float64)
    for c in present.tolist():
        if c < 0 or c >= ds.count:
            raise InputError(f"{ds.name}: class id {c} has no probability band (the raster "
                             f"has {ds.count} bands; band k+1 must be class k)")
        band = ds.read(c + 1, window=win, masked=False).astype(np.float64)
        scale, offset = ds.scales[c] or 1.0, ds.offsets[c] or 0.0
        at = kept & (classes == c)
        q[at] = band[at] * scale + offset
    return q


def _peak_rss_mb() -> float:
    """This process's peak resident memory in MB (Linux VmHWM; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0
