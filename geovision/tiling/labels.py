"""The labels of a tiling run: read once, placed on every source, selected per block.

LABELS is a vector file (polygons; points and lines with ``--buffer``) or a raster class map
(any CRS and resolution; :mod:`geovision.geo.rasterlabels`). :func:`read_placed` reads it and
places it on each source (:class:`PlacedLabels`): vector features are reprojected to the
source's CRS, points and lines buffered in the source's pixels
(:func:`geovision.geo.shapes.to_areas`, detection boxes :func:`~geovision.geo.shapes.to_boxes`)
and indexed with an STRtree (:class:`~geovision.tiling.burn.SourceLabels`); a label raster is
read block by block onto the source's grid. Class ids come from a
:class:`~geovision.geo.classes.ClassTable`: ``--class-map``'s, the field's values sorted
(numerically when they are numbers), or a label raster's own values.

A block asks :meth:`PlacedLabels.select` for its labels. A local run reads the labels on a
thread while the first blocks decode: its blocks hold :class:`LateLabels`, which wait for them
when the block needs them. The area of interest (``--aoi``) is read before the pass, since it
decides which tiles are kept (:func:`read_area`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from rasterio.warp import transform_bounds

from geovision.errors import InputError
from geovision.formats import IGNORE_INDEX
from geovision.geo.aoi import AreaOfInterest, read_aoi, unlabeled_fill
from geovision.geo.classes import MAX_CLASS_ID, ClassTable
from geovision.geo.classmap import read_class_map
from geovision.geo.grid import Grid
from geovision.geo.paths import is_local
from geovision.geo.raster import RasterInfo
from geovision.geo.rasterlabels import LabelRaster, label_classes, open_label_raster
from geovision.geo.scenes import SceneSource
from geovision.geo.shapes import check_buffer, to_areas, to_boxes
from geovision.geo.vector import Labels, is_vector, read_labels, to_crs
from geovision.geo.windows import PixelWindow, window_bounds
from geovision.options.tile import TileOptions
from geovision.tiling.blocks import Block
from geovision.tiling.burn import BlockLabels, RasterBlock, SourceLabels
from geovision.tiling.tasks import for_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RasterSource:
    """A label raster placed on one source: read onto each block's grid."""

    raster: LabelRaster
    table: ClassTable
    grid: Grid
    fill: int

    def select(self, window: PixelWindow) -> BlockLabels:
        """The block's labels: the raster, to read onto the block's grid."""
        return BlockLabels(shapes=(), values=np.zeros(0, np.int16),
                           pixel_boxes=np.zeros((0, 4)), fill=self.fill,
                           raster=RasterBlock(self.raster, self.table, self.grid.window(window)))


@dataclass(frozen=True)
class PlacedLabels:
    """The labels read and placed on every source, ready for block queries.

    Attributes:
        table: how label values became class ids.
        record: the ``labels`` record of the dataset's attributes.
        per_source: the labels of each source.
        counted: class ids counted per tile (ids ``0 .. counted - 1``).
        vector: the vector labels read (None: a label raster).
    """

    table: ClassTable
    record: dict[str, Any]
    per_source: list[SourceLabels] | list[RasterSource]
    counted: int
    vector: Labels | None = field(default=None, compare=False)

    @property
    def num_classes(self) -> int:
        """Class ids counted per tile (:attr:`counted`)."""
        return self.counted

    def select(self, source: int, block: Block, task: str) -> BlockLabels:
        """The labels of ``source`` that meet ``block`` (detection: boxes only)."""
        labels = self.per_source[source]
        if isinstance(labels, RasterSource):
            return labels.select(block.window)
        return labels.select(block.window, shapes=for_task(task).burns)

    def final_table(self, pixels: np.ndarray) -> ClassTable:
        """The classes of the dataset, given the pixels counted per class id.

        A raster numbered by its own values learns its classes from the ids found.
        """
        if self.table.by_value:
            return self.table.with_seen(np.flatnonzero(pixels[:IGNORE_INDEX]).tolist())
        return self.table


@dataclass(frozen=True)
class PlacedArea:
    """The area of interest (``--aoi``) and its geometry in each source's CRS."""

    area: AreaOfInterest
    per_source: list[shapely.Geometry]


def read_area(opts: TileOptions, sources: list[RasterInfo]) -> PlacedArea | None:
    """The area of interest in each source's CRS (None: no ``--aoi``).

    Raises:
        GeovisionError: the AOI file cannot be used (see :func:`geovision.geo.aoi.read_aoi`).
    """
    if opts.aoi is None:
        return None
    area = read_aoi(opts.aoi)
    return PlacedArea(area, [area.in_crs(s.crs) for s in sources])


def read_placed(path: str | os.PathLike[str], sources: list[RasterInfo],
                scenes: list[SceneSource], opts: TileOptions,
                area: PlacedArea | None = None,
                blocks: Sequence[Block] | None = None) -> PlacedLabels:
    """Read the labels (vector or raster) and place them on every source.

    ``blocks``: the blocks whose labels will be selected, once each (features' mappings are
    then dropped by the last block that takes them: :meth:`SourceLabels.expect`).

    Raises:
        GeovisionError: the labels cannot be used, with a message naming the file or option.
    """
    table = read_class_map(opts.class_map) if opts.class_map is not None else None
    spath = str(path)
    if (is_local(spath) and not os.path.exists(spath)) or is_vector(spath):
        placed = _vector(spath, sources, scenes, opts, table, blocks)
    else:
        placed = _raster(spath, sources, scenes, opts, table)
    placed.record.update({
        "class_map": placed.table.describe(), "unlabeled": opts.unlabeled,
        "buffer": opts.buffer,
        "aoi": area.area.describe() if area is not None else None})
    return placed


def _vector(path: str, sources: list[RasterInfo], scenes: list[SceneSource],
            opts: TileOptions, table: ClassTable | None,
            blocks: Sequence[Block] | None = None) -> PlacedLabels:
    lab = read_labels(path, layer=opts.layer, class_field=opts.class_field, class_map=table,
                      thin=True)
    check_buffer(np.asarray(lab.frame.geometry.values), opts.buffer, what=lab.path)
    placed, outside = place_labels(lab, sources, scenes)
    lab.dropped = {**lab.dropped, **({"outside_rasters": outside} if outside else {})}
    if outside:
        log.warning("%s: %d of %d features lie outside every raster and are not used",
                    lab.path, outside, lab.features)
    values = lab.frame["class_id"].to_numpy(np.int16)
    fill = unlabeled_fill(opts.unlabeled)
    burns = for_task(opts.task).burns
    per_source = []
    for i, (geoms, s) in enumerate(zip(placed, sources, strict=True)):
        areas = to_areas(geoms, opts.buffer, s.res) if burns else geoms
        boxes = None if burns else to_boxes(geoms, opts.buffer, s.res)
        per_source.append(SourceLabels(areas, values, s.transform, boxes=boxes, fill=fill))
        if blocks is not None and burns:
            per_source[-1].expect([b.window for b in blocks if b.source == i])
    return PlacedLabels(table=lab.table, record=lab.describe(), per_source=per_source,
                        counted=lab.table.num_outputs, vector=lab)


def _raster(path: str, sources: list[RasterInfo], scenes: list[SceneSource],
            opts: TileOptions, table: ClassTable | None) -> PlacedLabels:
    if not for_task(opts.task).burns:
        raise InputError(f"{path}: raster labels give masks, not objects; tile "
                         "them for segmentation or classification, or give vector labels for "
                         "detection")
    if opts.class_field is not None:
        raise InputError(f"{path}: --class-field names a field of vector labels; "
                         "this is a raster (its values are the classes): leave --class-field "
                         "out, or give --class-map FILE to name or renumber its values")
    raster = open_label_raster(path)
    grid = raster.grid
    touches = []
    for s in sources:
        try:
            b = transform_bounds(grid.crs, s.crs, *grid.bounds, densify_pts=21)
        except Exception:  # a footprint that does not transform: assume it may overlap
            b = s.bounds
        touches.append(all(map(math.isfinite, b)) and shapely.intersects(
            shapely.box(*b), shapely.box(*s.bounds)))
    if not any(touches):
        extents = "; ".join(
            f"{sc.name} {tuple(round(v, 4) for v in s.bounds)} in {s.crs.to_string()}"
            for sc, s in zip(scenes, sources, strict=True))
        raise InputError(
            f"{path}: the label raster does not overlap any raster (it spans "
            f"{tuple(round(float(v), 4) for v in grid.bounds)} in {grid.crs.to_string()}; "
            f"rasters: {extents}); check the files and their CRSs")
    classes = label_classes(raster, table)
    fill = unlabeled_fill(opts.unlabeled)
    per_source = [RasterSource(raster, classes, s.grid, fill) for s in sources]
    counted = MAX_CLASS_ID + 1 if classes.by_value else classes.num_outputs
    return PlacedLabels(table=classes, record=dict(raster.describe()), per_source=per_source,
                        counted=counted)


def place_labels(lab: Labels, sources: list[RasterInfo], scenes: list[SceneSource]
                 ) -> tuple[list[np.ndarray], int]:
    """The labels' geometries in each source's CRS, and the features that touch no source.

    Raises:
        InputError: no feature touches any raster.
    """
    placed = []
    touches = np.zeros(len(lab.frame), dtype=bool)
    for s in sources:
        geoms = np.asarray(to_crs(lab.frame, s.crs).geometry.values)
        touches |= shapely.intersects(geoms, shapely.box(*s.bounds))
        placed.append(geoms)
    if not touches.any():
        lb = lab.frame.total_bounds
        extents = "; ".join(
            f"{sc.name} {tuple(round(v, 4) for v in s.bounds)} in "
            f"{s.crs.to_string()}" for sc, s in zip(scenes, sources, strict=True))
        raise InputError(
            f"{lab.path}: no label feature overlaps any raster (labels span "
            f"{tuple(round(float(v), 4) for v in lb)} in {lab.frame.crs.to_string()}; rasters: "
            f"{extents}); check the files and their CRSs"
        )
    return placed, int((~touches).sum())


def block_area(area: shapely.Geometry | None, window: PixelWindow, transform: Any
               ) -> shapely.Geometry | None:
    """The part of the AOI (in the source's CRS) around a block, grown by a pixel."""
    if area is None:
        return None
    left, bottom, right, top = window_bounds(window, transform)
    rx, ry = abs(transform.a), abs(transform.e)
    return shapely.clip_by_rect(area, left - rx, bottom - ry, right + rx, top + ry)


@dataclass(frozen=True)
class LateLabels:
    """The labels of a block, waited for when the block needs them (see encode.LateLabels)."""

    labels: Future[PlacedLabels]
    source: int
    task: str

    def __call__(self, block: Block) -> tuple[BlockLabels | None, int]:
        """The block's labels and the class ids counted (waits for the labels)."""
        ready = self.labels.result()
        return ready.select(self.source, block, self.task), ready.num_classes

