"""``infer --vectors``: a segmentation scene's class regions as polygons, seam-exact.

The polygons are traced where the classes are made, piece by piece, never from the whole
class raster:

1. when a scene is planned, :func:`scene_plan` makes a polygon plan whose blocks are the
   layout's pieces (cuts at every piece's first row and column);
2. wherever a piece's classes become final (in its block's task for a piece one block
   finishes; when a seam is merged, in the scene's finishing step), :func:`polygonize_piece`
   traces it and stores the result in the scene's scratch folder (beside the block markers,
   written before them, so that ``--resume`` finds it);
3. the scene's finishing step stitches the stored pieces in any order, with bounded memory,
   into ``<stem>.polygons.gpkg`` (:func:`write_scene_polygons`).

On a Dask cluster steps 2 and 3 run in the block tasks and the scene's finishing task. The
polygons equal ``geovision vectorize <stem>.class.tif --probabilities <stem>.prob.tif``: the
probability averaged into ``mean_prob`` is the stored one (compact: ``round(p * 254) / 254``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from geovision.errors import InputError
from geovision.formats import CLASS_NODATA, PROB_SCALE, ids_of
from geovision.geo.polygonize import polygonize_block
from geovision.geo.polygons import PolygonPlan, load_block, make_plan, resolve_classes, save_block
from geovision.geo.vectorize import write_polygons
from geovision.inference.work import polygons_path
from geovision.options import flag_of
from geovision.options.infer import InferOptions
from geovision.tasks import get_task

if TYPE_CHECKING:
    from geovision.geo.grid import Grid
    from geovision.inference.layout import Layout, Piece
    from geovision.inference.work import SceneWork
    from geovision.models.bundle import Bundle


def run_name(bundle: Bundle) -> str:
    """The name of the training run that made a bundle: the layer name of its polygons.

    The session ``name`` of its training config; else the folder of a ``model.pt``
    (``runs/<name>/model.pt``); else the file's stem (``predictions`` for a bundle that
    was never a file).
    """
    config = (bundle.train or {}).get("config")
    if isinstance(config, str):
        try:
            name = (yaml.safe_load(config) or {}).get("name")
        except (yaml.YAMLError, AttributeError):
            name = None
        if isinstance(name, str) and name.strip():
            return name.strip()
    if bundle.path is None:
        return "predictions"
    path = Path(bundle.path)
    return path.parent.name if path.stem == "model" and path.parent.name else path.stem


def check_vectors(options: InferOptions, bundle: Bundle) -> None:
    """Check ``--vectors`` and its options against the model, before any work starts.

    Raises:
        InputError: the model is not a segmentation model, or a class is not one of its
            classes (the message names the flag).
    """
    if not options.vectors:
        return
    if get_task(bundle.task).target != "mask":
        raise InputError(f"--vectors: polygons are traced from a segmentation model's classes; "
                         f"{bundle.path} is a {bundle.task} model")
    resolve_classes(options.polygon_options(), {c.id: c.name for c in bundle.classes},
                    flag=flag_of(InferOptions, "vector_classes"))


def scene_plan(options: InferOptions, layout: Layout, grid: Grid,
               bundle: Bundle) -> PolygonPlan:
    """The polygon plan of a scene: its blocks are the pieces of the scene's layout."""
    polygon_options = options.polygon_options()
    if polygon_options.layer is None:
        polygon_options = dataclasses.replace(polygon_options, layer=run_name(bundle))
    rows = sorted({p.window.row for p in layout.pieces} | {layout.height})
    cols = sorted({p.window.col for p in layout.pieces} | {layout.width})
    return make_plan(polygon_options, height=grid.height, width=grid.width,
                     transform=grid.transform, crs=grid.crs,
                     class_names={c.id: c.name for c in bundle.classes},
                     row_edges=rows, col_edges=cols)


def own_probability(classes: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Each pixel's stored probability of its own class, 0..1 (``(rows, cols)`` float32).

    Args:
        classes: ``(rows, cols)`` class ids, :data:`CLASS_NODATA` where invalid.
        stored: ``(K, rows, cols)`` stored probabilities: compact uint8 (``p * 254``) or
            float32.
    """
    ids = np.where(classes == CLASS_NODATA, 0, classes).astype(np.intp)
    own = np.take_along_axis(stored, ids[None], axis=0)[0]
    if own.dtype == np.uint8:
        return own.astype(np.float32) / np.float32(PROB_SCALE)
    return own.astype(np.float32)


def polygonize_piece(work: SceneWork, piece: Piece, classes: np.ndarray,
                     stored: np.ndarray) -> None:
    """Trace a piece whose classes are final and store its polygons in the scratch folder.

    Does nothing without ``--vectors``. Call it before the piece's own files are stored (its
    block's marker, or a seam's class array), so that a piece marked done has its polygons.

    Args:
        work: the scene's work.
        piece: the piece.
        classes: its ``(rows, cols)`` uint8 model class indices (:data:`CLASS_NODATA` where
            invalid); the polygons get the classes' ids (``work.class_ids``).
        stored: its stored probabilities ``(K, rows, cols)`` (compact uint8 or float32).
    """
    if work.polygons is None:
        return
    block = polygonize_block(work.polygons, piece.window, ids_of(classes, work.class_ids),
                             own_probability(classes, stored), nodata=CLASS_NODATA)
    save_block(polygons_path(work.scratch, piece), block)


def output_name(options: InferOptions, stem: str) -> list[str]:
    """The polygon output's file name with ``--vectors`` (none without)."""
    return [f"{stem}{options.polygon_options().suffix}"] if options.vectors else []


def write_scene_polygons(work: SceneWork, layout: Layout, out: Path,
                         stem: str) -> dict[str, Any] | None:
    """Stitch a scene's stored pieces into ``<stem>.polygons.gpkg`` (or ``.geojson``).

    The file is written in the scratch folder and moved into ``out`` once complete.

    Returns:
        The polygons' record of the run summary (features per class, seconds, ...), or None
        without ``--vectors``.
    """
    plan = work.polygons
    if plan is None:
        return None
    name = f"{stem}{plan.options.suffix}"
    tmp = Path(work.scratch) / name
    blocks = (load_block(polygons_path(work.scratch, p)) for p in layout.pieces)
    summary = write_polygons(plan, blocks, tmp, with_prob=True)
    os.replace(tmp, out / name)
    record = {**summary.describe(), "path": name}
    for local in ("workers", "worker_peak_rss_mb"):  # of vectorize's worker processes
        record.pop(local, None)
    return record
