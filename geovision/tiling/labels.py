"""The labels of a tiling run: read once, placed on every source, selected per block.

:func:`read_placed` reads the label file and reprojects it to each source's CRS
(:class:`PlacedLabels`, with an STRtree per source in :class:`~geovision.tiling.burn.SourceLabels`);
a block's task asks :meth:`PlacedLabels.select` for the features that meet it. A local run
reads the labels on a thread while the first blocks decode: its blocks hold
:class:`LateLabels`, which wait for them when the block needs them.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import shapely

from geovision.errors import InputError
from geovision.geo.raster import RasterInfo
from geovision.geo.scenes import SceneSource
from geovision.geo.vector import Labels, read_labels, to_crs
from geovision.options.tile import TileOptions
from geovision.tiling.blocks import Block
from geovision.tiling.burn import BlockLabels, SourceLabels
from geovision.tiling.tasks import for_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlacedLabels:
    """The labels read, reprojected to every source, ready for block queries."""

    lab: Labels
    per_source: list[SourceLabels]

    @property
    def num_classes(self) -> int:
        """Classes, background included."""
        return len(self.lab.classes)

    def select(self, source: int, block: Block, task: str) -> BlockLabels:
        """The features of ``source`` that meet ``block`` (detection: their boxes only)."""
        return self.per_source[source].select(block.window, shapes=for_task(task).burns)


def read_placed(path: str | os.PathLike[str], sources: list[RasterInfo],
                scenes: list[SceneSource], opts: TileOptions) -> PlacedLabels:
    """Read the labels and place them on every source.

    Raises:
        GeovisionError: the label file cannot be used (see :func:`read_labels`), or no feature
            overlaps any raster.
    """
    lab = read_labels(path, layer=opts.layer, class_field=opts.class_field)
    placed, outside = place_labels(lab, sources, scenes)
    lab.dropped = {**lab.dropped, **({"outside_rasters": outside} if outside else {})}
    if outside:
        log.warning("%s: %d of %d features lie outside every raster and are not used",
                    lab.path, outside, lab.features)
    values = lab.frame["class_id"].to_numpy(np.int16)
    return PlacedLabels(lab, [SourceLabels(geoms, values, s.transform)
                              for geoms, s in zip(placed, sources, strict=True)])


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


@dataclass(frozen=True)
class LateLabels:
    """The labels of a block, waited for when the block needs them (see encode.LateLabels)."""

    labels: Future[PlacedLabels]
    source: int
    task: str

    def __call__(self, block: Block) -> tuple[BlockLabels | None, int]:
        """The block's labels and the number of classes (waits for the labels)."""
        ready = self.labels.result()
        return ready.select(self.source, block, self.task), ready.num_classes
