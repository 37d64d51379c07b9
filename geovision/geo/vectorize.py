"""``vectorize()``: any class raster file to polygons, block by block, in bounded memory.

The raster is read in windows aligned to its internal tiling; each window is polygonized
(:func:`~geovision.geo.polygonize.polygonize_block`) in a pool of worker processes, the
results are stitched in this process as they finish, in any order
(:class:`~geovision.geo.stitch.Stitcher`), and the regions go to the output file in batches
(:class:`~geovision.geo.polygon_writers.PolygonWriter`). Memory is bounded by a few blocks in
flight, the open parts along unfinished seams and one batch of features.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import rasterio

from geovision.errors import InputError, OutputExistsError
from geovision.geo.polygon_writers import PolygonWriter
from geovision.geo.polygonize import read_and_polygonize
from geovision.geo.polygons import (
    DEFAULT_BLOCK,
    BlockPolygons,
    PolygonOptions,
    PolygonPlan,
    make_plan,
)
from geovision.geo.raster import open_raster
from geovision.geo.stitch import Stitcher
from geovision.geo.windows import PixelWindow

log = logging.getLogger(__name__)

#: Pixels per block aimed at when a raster is stored in strips rather than tiles.
STRIP_BLOCK_PIXELS = DEFAULT_BLOCK * DEFAULT_BLOCK


@dataclass(frozen=True)
class VectorSummary:
    """What a vectorization wrote and what it cost (the run JSON's ``polygons`` record).

    Attributes:
        path: the file written.
        format: ``gpkg`` or ``geojson``.
        layer: the GeoPackage layer (None for GeoJSON).
        features: features written.
        per_class: features per class name.
        stitched: features joined from parts of several blocks.
        dropped_small: regions left out by ``min_area``.
        blocks: blocks polygonized.
        block_shape: rows and columns of a full block.
        workers: processes that polygonized blocks (1: this process).
        seconds: wall-clock time of the whole run.
        block_seconds: time spent in the block step, summed over blocks.
        worker_peak_rss_mb: peak resident memory of the worker processes, summed (0 when
            there are none).
    """

    path: str
    format: str
    layer: str | None
    features: int
    per_class: dict[str, int]
    stitched: int
    dropped_small: int
    blocks: int
    block_shape: tuple[int, int]
    workers: int
    seconds: float
    block_seconds: float
    worker_peak_rss_mb: float

    def describe(self) -> dict[str, Any]:
        """Plain values for the run summary JSON."""
        out = asdict(self)
        out["block_shape"] = list(self.block_shape)
        return out

    def report_line(self) -> str:
        """One line for the command line: what was written where, and how fast."""
        per_class = ", ".join(f"{k} {v}" for k, v in self.per_class.items()) or "none"
        where = f"{self.path} (layer {self.layer})" if self.layer else self.path
        return (f"{self.features} polygons ({per_class}; {self.stitched} joined across "
                f"blocks) in {self.seconds:.1f} s -> {where}")


def raster_class_names(ds: rasterio.io.DatasetReader) -> dict[int, str]:
    """Class names stored in a class raster (empty when there are none).

    Read from geovision's ``classes`` tag (JSON), else from band tags ``class_<id>``.
    """
    tags = ds.tags()
    if "classes" in tags:
        try:
            return {int(c["id"]): str(c["name"]) for c in json.loads(tags["classes"])}
        except (ValueError, KeyError, TypeError):
            log.warning("%s: unreadable 'classes' tag; classes are named by id", ds.name)
    band = ds.tags(1)
    return {int(k[6:]): v for k, v in band.items() if k.startswith("class_") and k[6:].isdigit()}


def block_shape_for(ds: rasterio.io.DatasetReader, block_size: int | None) -> tuple[int, int]:
    """Rows and columns of the blocks read from ``ds``: whole internal tiles when possible.

    A tiled raster gets blocks of ``round(block_size / tile)`` tiles along each axis (at
    least one); a raster stored in strips gets full-width blocks of whole strips holding
    about :data:`STRIP_BLOCK_PIXELS` pixels. An explicit ``block_size`` is taken as asked.
    """
    th, tw = ds.block_shapes[0]
    if block_size is not None:
        return (block_size, block_size)
    if tw >= ds.width:
        strips = max(1, round(STRIP_BLOCK_PIXELS / max(ds.width, 1) / th))
        return (min(ds.height, strips * th), ds.width)
    return (th * max(1, round(DEFAULT_BLOCK / th)), tw * max(1, round(DEFAULT_BLOCK / tw)))


def vectorize(class_raster: str | os.PathLike[str], out_path: str | os.PathLike[str],
              options: PolygonOptions | None = None,
              probabilities: str | os.PathLike[str] | None = None, *,
              workers: int | None = None, block_size: int | None = None,
              overwrite: bool = False) -> VectorSummary:
    """Polygonize a class raster into a GeoPackage or GeoJSON file, seam-exact.

    Each connected region (4-connectivity) of one class becomes one polygon, the same as
    ``rasterio.features.shapes`` over the whole raster gives, but read and traced block by
    block in bounded memory.

    Args:
        class_raster: a single-band integer raster of class ids (any GDAL format; nodata and
            masks respected). Class names come from its tags when it has them.
        out_path: the GeoPackage or GeoJSON file to write.
        options: polygon options (classes, min_area, simplify, format, layer).
        probabilities: a raster on the same grid with one band per class (band ``k + 1`` is
            class ``k``; scales and offsets applied), for ``mean_prob``.
        workers: processes polygonizing blocks (default: one per CPU, at most one per block;
            1 works in this process). They are spawned, so a script calling this with more
            than one worker must do so under ``if __name__ == "__main__":``.
        block_size: block side in pixels (default: whole internal tiles, about
            :data:`~geovision.geo.polygons.DEFAULT_BLOCK` pixels).
        overwrite: replace ``out_path`` if it exists; in a GeoPackage, replace only the
            layer (its other layers are kept, as they are when a new layer is added).

    Returns:
        The summary of the run.

    Raises:
        InputFileError: a raster is missing or unreadable.
        InputError: the class raster is not integer, the probabilities do not match it, or
            an option is invalid.
        OutputExistsError: ``out_path`` exists (for a GeoPackage: with a layer of this name,
            or as another kind of file) and ``overwrite`` is false.
    """
    start = time.perf_counter()
    options = options or PolygonOptions()
    if options.layer is None:
        options = replace(options, layer=Path(class_raster).stem)
    info = open_raster(class_raster)
    if not np.issubdtype(np.dtype(info.dtype), np.integer):
        raise InputError(f"{info.path}: class raster has dtype {info.dtype}; class ids must "
                         "be integers")
    prob_path = None
    if probabilities is not None:
        prob = open_raster(probabilities)
        if (prob.width, prob.height) != (info.width, info.height) or not np.allclose(
                tuple(prob.transform), tuple(info.transform)):
            raise InputError(f"{prob.path}: probabilities are on another grid than "
                             f"{info.path} ({prob.width}x{prob.height} vs "
                             f"{info.width}x{info.height}); give the prob raster written "
                             "with the class raster")
        prob_path = prob.path
    out = Path(out_path)
    keep_layers = _check_output(out, options, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(info.path) as ds:
        names = raster_class_names(ds)
        shape = block_shape_for(ds, block_size)
    plan = make_plan(options, height=info.height, width=info.width, transform=info.transform,
                     crs=info.crs, class_names=names, block_size=shape)
    windows = plan.windows()
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(windows)))
    peaks: dict[int, float] = {}

    def blocks() -> Iterator[BlockPolygons]:
        for block, pid, peak in _blocks(info.path, prob_path, plan, windows, n_workers):
            if pid != os.getpid():
                peaks[pid] = max(peaks.get(pid, 0.0), peak)
            yield block

    summary = write_polygons(plan, blocks(), out, with_prob=prob_path is not None,
                             keep_layers=keep_layers)
    return replace(summary, workers=n_workers, seconds=time.perf_counter() - start,
                   worker_peak_rss_mb=sum(peaks.values()))


def _check_output(out: Path, options: PolygonOptions, *, overwrite: bool) -> bool:
    """Whether ``out`` is a GeoPackage whose other layers are kept.

    Raises:
        OutputExistsError: ``out`` exists (a GeoPackage: with the layer) and ``overwrite``
            is false.
    """
    if not out.exists():
        return False
    if options.format == "gpkg" and is_geopackage(out):
        layers = [str(n) for n in pyogrio.list_layers(out)[:, 0]]
        if options.layer in layers and not overwrite:
            raise OutputExistsError(
                f"{out}: layer '{options.layer}' exists already (use --overwrite to replace "
                "it, or --layer NAME to add another layer)")
        if options.layer not in layers:
            log.info("%s: adding layer '%s' beside %s", out, options.layer,
                     ", ".join(layers) or "no other layer")
        return True
    if not overwrite:
        raise OutputExistsError(f"{out}: exists already (use --overwrite to replace it)")
    return False


def is_geopackage(path: Path) -> bool:
    """``path`` is a GeoPackage file (an SQLite database with GeoPackage's application id)."""
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(72)
    return head[:16] == b"SQLite format 3\x00" and head[68:72] == b"GPKG"


def write_polygons(plan: PolygonPlan, blocks: Iterable[BlockPolygons],
                   out_path: str | os.PathLike[str], *, with_prob: bool,
                   keep_layers: bool = False) -> VectorSummary:
    """Stitch polygonized blocks, arriving in any order, and write the regions to a file.

    This is the finishing step wherever the blocks were polygonized (worker processes, Dask
    tasks, or results stored by an interrupted run and loaded again).

    Args:
        plan: the scene's plan.
        blocks: every block of ``plan``, each once, in any order.
        out_path: the GeoPackage or GeoJSON file (``plan.options.format``); it appears only
            once complete.
        with_prob: the blocks carry probability sums (``mean_prob`` is written).
        keep_layers: ``out_path`` is a GeoPackage whose other layers stay (the layer
            ``plan.options.layer`` is added, or replaced).

    Returns:
        The summary (``workers`` 1 and ``worker_peak_rss_mb`` 0: the caller knows better).

    Raises:
        RuntimeError: a block is missing or was given twice.
    """
    start = time.perf_counter()
    stitcher = Stitcher(plan, with_prob=with_prob)
    per_class: Counter[int] = Counter()
    block_seconds = 0.0
    with PolygonWriter(out_path, plan, keep_layers=keep_layers) as writer:
        for block in blocks:
            block_seconds += block.seconds
            regions = stitcher.add(block)
            per_class.update(regions.class_id.tolist())
            writer.write(regions)
        stitcher.close()
    stats, options = stitcher.stats, plan.options
    return VectorSummary(
        path=str(out_path), format=options.format,
        layer=plan.layer if options.format == "gpkg" else None,
        features=sum(per_class.values()),
        per_class={plan.name_of(k): v for k, v in sorted(per_class.items())},
        stitched=stats.stitched, dropped_small=stats.dropped, blocks=stats.blocks,
        block_shape=(plan.row_edges[1], plan.col_edges[1]), workers=1,
        seconds=time.perf_counter() - start, block_seconds=block_seconds,
        worker_peak_rss_mb=0.0)


def _blocks(class_path: str, prob_path: str | None, plan: PolygonPlan,
            windows: list[PixelWindow], workers: int,
            ) -> Iterator[tuple[BlockPolygons, int, float]]:
    """Polygonized blocks as they finish (here, or in ``workers`` processes)."""
    if workers == 1:
        for w in windows:
            yield read_and_polygonize(class_path, prob_path, plan, w)
        return
    # Spawned (not forked) workers: GDAL's state and threads do not survive a fork.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        todo = iter(windows)
        running: set[Future[tuple[BlockPolygons, int, float]]] = set()
        while True:
            while len(running) < 2 * workers:
                nxt = next(todo, None)
                if nxt is None:
                    break
                running.add(pool.submit(read_and_polygonize, class_path, prob_path, plan, nxt))
            if not running:
                return
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                try:
                    yield fut.result()
                except BrokenProcessPool as exc:
                    raise RuntimeError(
                        "vectorize: a worker process died (out of memory, or it could not "
                        "start: a script that calls vectorize() with workers > 1 must do so "
                        "under `if __name__ == '__main__':`, as processes are spawned); "
                        "workers=1 runs in this process") from exc


def class_names_of(path: str | os.PathLike[str]) -> Mapping[int, str]:
    """The class names stored in a class raster file (see :func:`raster_class_names`)."""
    with rasterio.open(path) as ds:
        return raster_class_names(ds)
