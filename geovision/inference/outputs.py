"""Turning a scene's stored block results into its output files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from affine import Affine

from geovision.inference import detections
from geovision.inference.blocks import Job, Timings, block_result, piece_path
from geovision.inference.geojson import pixel_boxes, to_target, write_features
from geovision.inference.grid import Layout, Piece
from geovision.inference.writers import (
    NODATA,
    assemble,
    describe_classes,
    describe_probabilities,
    tiled_profile,
    to_cog,
)

if TYPE_CHECKING:
    from geovision.geo.raster import RasterInfo
    from geovision.inference.api import InferOptions
    from geovision.models.bundle import Bundle


def output_names(stem: str, task: str, probabilities: bool) -> list[str]:
    """File names a scene's outputs get in the output folder (the summary aside)."""
    if task == "segmentation":
        return [f"{stem}.class.tif"] + ([f"{stem}.prob.tif"] if probabilities else [])
    if task == "detection":
        return [f"{stem}.detections.geojson"]
    return [f"{stem}.class.tif", f"{stem}.classes.geojson"]


def write_outputs(job: Job, layout: Layout, bundle: Bundle, info: RasterInfo, out: Path,
                  stem: str, opts: InferOptions, timings: Timings) -> dict[str, Any]:
    """Write the scene's outputs from the scratch directory; return counts for the summary."""
    t0 = time.perf_counter()
    scratch = Path(job.scratch)
    counts: dict[str, Any] = {}
    if job.task == "segmentation":
        _segmentation(job, layout, bundle, info, out, stem, timings)
    elif job.task == "detection":
        counts["detections"] = _detections(job, layout, bundle, info, out, stem, opts)
    else:
        counts["cells"] = _classification(job, layout, bundle, info, out, stem, opts, scratch)
    timings.extra["outputs"] = time.perf_counter() - t0
    return counts


def _segmentation(job: Job, layout: Layout, bundle: Bundle, info: RasterInfo, out: Path,
                  stem: str, timings: Timings) -> None:
    scratch = Path(job.scratch)
    base = {"height": info.height, "width": info.width, "crs": info.crs,
            "transform": info.transform}

    def loader(what: str) -> Any:
        def load(piece: Piece) -> np.ndarray:
            return np.load(piece_path(scratch, piece, what), mmap_mode="r")
        return load

    t0 = time.perf_counter()
    tif = scratch / "class.tif"
    with rasterio.open(tif, "w", **tiled_profile(count=1, dtype="uint8", nodata=NODATA,
                                                  **base)) as dst:
        describe_classes(dst, bundle.classes)
        assemble(dst, layout.pieces, loader("class"), NODATA)
    prob_tif = scratch / "prob.tif"
    if job.probabilities:
        compact = job.prob_dtype == "uint8"
        nodata = NODATA if compact else float("nan")
        with rasterio.open(prob_tif, "w", **tiled_profile(
                count=job.num_classes, dtype=job.prob_dtype, nodata=nodata, **base)) as dst:
            describe_probabilities(dst, bundle.classes, compact)
            assemble(dst, layout.pieces, loader("prob"), nodata)
    t1 = time.perf_counter()
    to_cog(tif, out / f"{stem}.class.tif", resampling="MODE")
    if job.probabilities:
        to_cog(prob_tif, out / f"{stem}.prob.tif", resampling="AVERAGE")
    timings.extra["assemble"] = t1 - t0
    timings.extra["cog"] = time.perf_counter() - t1


def _detections(job: Job, layout: Layout, bundle: Bundle, info: RasterInfo, out: Path,
                stem: str, opts: InferOptions) -> int:
    tables = [np.load(block_result(job.scratch, b, "det")) for b in layout.blocks]
    table = np.concatenate(tables) if tables else detections.empty()
    merged = detections.merge(table, detections.MergeRule(iou=opts.nms_iou, ios=opts.ios),
                              cell=float(job.window))
    geoms = to_target(pixel_boxes(merged[:, :4], info.transform), info.crs, opts.crs)
    names = bundle.class_names
    props = [{"class": names[int(r[5])] if int(r[5]) < len(names) else str(int(r[5])),
              "class_id": int(r[5]), "score": round(float(r[4]), 4)} for r in merged]
    write_features(out / f"{stem}.detections.geojson", geoms, props, crs=info.crs,
                   target=opts.crs)
    return len(merged)


def cell_transform(transform: Affine, stride: int) -> Affine:
    """Affine of the coarse classification grid: one cell per ``stride`` scene pixels."""
    return transform * Affine.scale(stride, stride)


def _classification(job: Job, layout: Layout, bundle: Bundle, info: RasterInfo, out: Path,
                    stem: str, opts: InferOptions, scratch: Path) -> int:
    tables = [np.load(block_result(scratch, b, "cells")) for b in layout.blocks]
    cells = np.concatenate(tables)
    n_rows, n_cols = len(layout.row_origins), len(layout.col_origins)
    grid = np.full((1, n_rows, n_cols), NODATA, dtype=np.uint8)
    probs = cells[:, 3:]
    valid = cells[:, 2] > 0
    ids = np.argmax(probs, axis=1)
    rows, cols = cells[:, 0].astype(int), cells[:, 1].astype(int)
    grid[0, rows[valid], cols[valid]] = ids[valid]
    transform = cell_transform(info.transform, job.stride)
    tif = scratch / "cells.tif"
    with rasterio.open(tif, "w", **tiled_profile(
            height=n_rows, width=n_cols, count=1, dtype="uint8", crs=info.crs,
            transform=transform, nodata=NODATA)) as dst:
        describe_classes(dst, bundle.classes)
        dst.write(grid)
    to_cog(tif, out / f"{stem}.class.tif", resampling="MODE")
    s = job.stride
    boxes = np.column_stack([cols * s, rows * s, (cols + 1) * s, (rows + 1) * s]).astype(float)
    boxes[:, 2] = np.minimum(boxes[:, 2], info.width)
    boxes[:, 3] = np.minimum(boxes[:, 3], info.height)
    keep = valid
    geoms = to_target(pixel_boxes(boxes[keep], info.transform), info.crs, opts.crs,
                      segment=abs(info.transform.a) * s / 8)
    names = bundle.class_names
    props = [{"class": names[int(i)], "class_id": int(i), "score": round(float(p.max()), 4),
              "row": int(r), "col": int(c), "valid": round(float(v), 4)}
             for i, p, r, c, v in zip(ids[keep], probs[keep], rows[keep], cols[keep],
                                      cells[keep, 2], strict=True)]
    write_features(out / f"{stem}.classes.geojson", geoms, props, crs=info.crs,
                   target=opts.crs)
    return int(keep.sum())
