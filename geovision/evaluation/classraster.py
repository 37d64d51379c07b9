"""Scoring a class raster (a map) against reference labels over the whole scene.

The reference is put on the map's grid one window at a time (see
:mod:`geovision.evaluation.reference`) and counted (:class:`~geovision.evaluation.tally.Tally`),
so memory depends on the window size and the number of classes, never on the raster's size.
A pixel is scored when it is inside the area of interest (if any), holds data in the map,
has a named map value, and has a reference class.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from geovision.errors import InputError
from geovision.evaluation.area import pixel_area
from geovision.evaluation.classes import (
    LABELS,
    PREDICTIONS,
    ClassList,
    ValueLookup,
    raster_class_names,
)
from geovision.evaluation.estimators import (
    CONFIDENCE,
    census_estimates,
    class_metrics,
    cohen_kappa,
    overall_accuracy,
    percentile_interval,
    point_estimates,
)
from geovision.evaluation.estimators import bootstrap_se as _bootstrap_se
from geovision.evaluation.reference import (
    AoiMask,
    RasterReference,
    VectorReference,
    grid_windows,
)
from geovision.evaluation.tally import Tally
from geovision.formats import BACKGROUND, IGNORE_INDEX
from geovision.geo.classes import value_key
from geovision.geo.classmap import read_class_map
from geovision.geo.grid import Grid
from geovision.geo.raster import open_raster, valid_mask
from geovision.geo.rasterlabels import open_label_raster
from geovision.geo.vector import is_vector, read_labels, to_crs
from geovision.options.score import ScoreOptions
from geovision.progress import progress_bar

log = logging.getLogger(__name__)

#: Why a pixel of the grid is not scored, in the order the reasons are checked.
EXCLUDED = ("outside_aoi", "prediction_nodata", "prediction_unnamed", "no_reference")


def prediction_names(ds: rasterio.io.DatasetReader, path: str, opts: ScoreOptions
                     ) -> tuple[dict[int, str], str]:
    """The names of a class raster's values (its class ids) and where they come from.

    In order: the class-map file of ``opts.class_map`` (the ids and names of its classes);
    the class names geovision writes in a class raster's metadata; GDAL category names or a
    raster attribute table.

    Raises:
        InputError: the raster is not of whole numbers, or has no names and no class map
            was given.
    """
    if not np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
        raise InputError(f"{path}: a class raster holds whole-number class values; this one "
                         f"is {ds.dtypes[0]}")
    if opts.class_map is not None:
        table = read_class_map(opts.class_map)
        return {c.id: c.name for c in table.classes}, "class_map"
    names = raster_class_names(ds)
    if names is not None:
        return names, "metadata"
    categories = dict(open_label_raster(path).names)
    if categories:
        return categories, "categories"
    raise InputError(f"{path}: no class names in its metadata (geovision infer writes them) "
                     "nor category names; give --class-map FILE naming its class ids")


def _vector_reference(labels: str, grid: Grid, classes: ClassList, opts: ScoreOptions,
                      predicted: dict[int, str]) -> tuple[VectorReference, dict[str, Any]]:
    lab = read_labels(labels, layer=opts.layer, class_field=opts.class_field)
    if opts.class_map is not None and opts.class_field is not None:
        # the class map of tiling numbers the field's values when it lists them (codes kept
        # as ids); a map that only names the predictions' ids leaves the labels by value
        table = read_class_map(opts.class_map)
        listed = {k for k, _ in table.values}
        if any(value_key(c["name"]) in listed for c in lab.classes[1:]):
            lab = read_labels(labels, layer=opts.layer, class_field=opts.class_field,
                              class_map=table)
    if opts.class_field is None:
        objects = [n for _, n in sorted(predicted.items()) if n != "background"]
        if len(objects) != 1:
            raise InputError(
                f"{labels}: give --class-field: without it every feature is one class, but "
                f"the predictions have {len(objects)} classes besides background "
                f"({', '.join(objects[:10])})")
        label_names = {1: objects[0]}
    else:
        label_names = {int(c["id"]): str(c["name"]) for c in lab.classes[1:]}
    to_index = {cid: classes.add(name, LABELS) for cid, name in label_names.items()}
    background = classes.add("background", LABELS) if opts.unlabeled == "background" else None
    frame = to_crs(lab.frame, grid.crs)
    # a class map may make values background (id 0) or ignored (not scored)
    if (frame["class_id"] == BACKGROUND).any():
        to_index[BACKGROUND] = classes.add("background", LABELS)
    to_index[IGNORE_INDEX] = -1
    index = np.array([to_index[int(c)] for c in frame["class_id"]], dtype=np.int64)
    source = VectorReference(np.asarray(frame.geometry.values), index, grid, background)
    return source, {"form": "vector", **lab.describe(), "unlabeled": opts.unlabeled}


def _raster_reference(labels: str, grid: Grid, classes: ClassList, opts: ScoreOptions
                      ) -> tuple[RasterReference, dict[str, Any]]:
    table = read_class_map(opts.class_map) if opts.class_map is not None else None
    source = RasterReference(labels, grid, classes, table)
    return source, {**source.raster.describe(), "names_from": source.named_by,
                    "class_map": source.table.describe(), "resampling": "nearest"}


def tally_class_raster(predictions: str, labels: str, opts: ScoreOptions, *,
                       quiet: bool = True) -> tuple[Tally, ClassList, dict[str, Any]]:
    """Count a class raster against its reference, window by window.

    Args:
        predictions: the class raster (the map).
        labels: vector labels (any OGR format) or a raster class map.
        opts: the scoring options.
        quiet: hide the progress bar.

    Returns:
        The sums, the class list, and the description of the inputs (the ``predictions``,
        ``labels``, ``aoi``, ``area``, ``excluded`` and ``unnamed_values`` records of
        score.json).

    Raises:
        InputError: an input does not fit (see :func:`prediction_names`, labels and AOI).
        InputFileError: an input cannot be read.
    """
    info = open_raster(predictions)
    grid = info.grid
    classes = ClassList()
    with rasterio.open(predictions) as ds:
        names, named_by = prediction_names(ds, predictions, opts)
        lookup = ValueLookup.of({v: classes.add(n, PREDICTIONS, v)
                                 for v, n in sorted(names.items())})
        reference: VectorReference | RasterReference
        if is_vector(labels):
            reference, label_record = _vector_reference(labels, grid, classes, opts, names)
        else:
            reference, label_record = _raster_reference(labels, grid, classes, opts)
        aoi = AoiMask(opts.aoi, grid) if opts.aoi is not None else None
        area = pixel_area(grid.crs, grid.transform)
        tally = Tally(opts.replicates, opts.bootstrap_block, opts.seed)
        excluded = dict.fromkeys(EXCLUDED, 0)
        unnamed: dict[int, int] = {}
        windows = grid_windows(grid, opts.block_size)
        try:
            with progress_bar(total=len(windows), desc="score", unit="win",
                              disable=quiet) as bar:
                for w in windows:
                    win = Window(w.col, w.row, w.width, w.height)
                    data = ds.read(1, window=win)
                    inside = (aoi.read(w) if aoi is not None
                              else np.ones(data.shape, dtype=bool))
                    valid = valid_mask(ds, [1], win, data[None])
                    predicted = lookup(data)
                    ref = reference.read(w)
                    named = predicted >= 0
                    has_ref = ref >= 0
                    excluded["outside_aoi"] += int((~inside).sum())
                    excluded["prediction_nodata"] += int((inside & ~valid).sum())
                    excluded["prediction_unnamed"] += int((inside & valid & ~named).sum())
                    scored = inside & valid & named
                    excluded["no_reference"] += int((scored & ~has_ref).sum())
                    scored &= has_ref
                    odd = inside & valid & ~named
                    if odd.any():
                        values, counts = np.unique(data[odd], return_counts=True)
                        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
                            unnamed[int(v)] = unnamed.get(int(v), 0) + int(c)
                    tally.grow(len(classes))
                    tally.add(w, ref, predicted, scored, area.rows(w.row, w.height))
                    bar.update(1)
        finally:
            reference.close()
    if isinstance(reference, RasterReference):
        label_record["dropped_pixels"] = reference.dropped
        label_record["class_map"] = reference.table.describe()
    record = {
        "predictions": {"path": str(predictions), "crs": info.crs.to_wkt(),
                        "epsg": info.crs.to_epsg(), "transform": list(info.transform)[:6],
                        "width": info.width, "height": info.height,
                        "names_from": named_by},
        "labels": label_record,
        "aoi": opts.aoi,
        "area": area.describe(),
        "excluded": excluded,
        "unnamed_values": {PREDICTIONS: {str(k): v for k, v in sorted(unnamed.items())}},
    }
    return tally, classes, record


def _estimate(value: Any, reps: np.ndarray | None, i: int | None = None) -> dict[str, Any]:
    """``{estimate, se, ci95}`` of one statistic from its replicates (se, ci null without)."""
    v = float(value if i is None else value[i])
    if reps is None:
        return {"estimate": v, "se": None, "ci95": None}
    r = reps if i is None else reps[:, i]
    lo, hi = percentile_interval(r, CONFIDENCE)
    return {"estimate": v, "se": float(_bootstrap_se(r)), "ci95": [float(lo), float(hi)]}


def _scaled(estimate: dict[str, Any], factor: float) -> dict[str, Any]:
    """An ``{estimate, se, ci95}`` record multiplied by ``factor`` (a proportion to an area)."""
    ci = estimate["ci95"]
    se = estimate["se"]
    return {"estimate": estimate["estimate"] * factor,
            "se": None if se is None else se * factor,
            "ci95": None if ci is None else [ci[0] * factor, ci[1] * factor]}


def summarize(tally: Tally, classes: ClassList, opts: ScoreOptions) -> dict[str, Any]:
    """The metrics of score.json from the sums of a class raster's score.

    Returns:
        The records ``classes``, ``only_in_predictions``, ``only_in_labels``, ``pixels``,
        ``confusion_matrix``, ``overall_accuracy``, ``kappa``, ``miou``, ``macro_f1``,
        ``per_class``, ``baseline`` and ``area_adjusted`` (see the README of score.json in
        :mod:`geovision.evaluation.report`).
    """
    c, a = tally.counts, tally.area
    names = classes.names
    m = class_metrics(c)
    pixels = int(c.sum())
    total_area = float(a.sum())
    mapped = a.sum(axis=0)
    census = census_estimates(a.T)
    reps = None
    if tally.n_replicates > 0 and len(tally.blocks) > 1:
        reps = point_estimates(np.transpose(tally.replicates, (0, 2, 1)), mapped)
    per_class = {}
    for i, name in enumerate(names):
        per_class[name] = {
            "iou": float(m.iou[i]), "f1": float(m.f1[i]),
            "users_accuracy": float(m.users_accuracy[i]),
            "producers_accuracy": float(m.producers_accuracy[i]),
            "reference_pixels": int(m.reference[i]), "predicted_pixels": int(m.predicted[i]),
        }
    adjusted: dict[str, Any] = {
        "method": ("Olofsson et al. (2014) stratified estimators with the map classes as "
                   "strata, applied to the full reference map: every pixel is a sample "
                   "unit, so the estimates equal the area-weighted census values. 95% "
                   "intervals: percentile block bootstrap over the scene; each replicate "
                   "resamples blocks with replacement and applies the same estimators to "
                   "their error matrix with the scene's mapped areas."),
        "bootstrap": {
            "block_pixels": opts.bootstrap_block, "blocks": len(tally.blocks),
            "replicates": opts.replicates if reps is not None else 0, "seed": opts.seed,
            "weights": "Poisson(1) count per block and replicate, seeded by "
                       "(seed, block row, block col)",
            "interval": f"percentiles {(1 - CONFIDENCE) / 2 * 100:g} and "
                        f"{(1 + CONFIDENCE) / 2 * 100:g} of the replicates",
            "se": "standard deviation of the replicates",
            "replicates_defined": (int(np.isfinite(reps.overall_accuracy).sum())
                                   if reps is not None else 0),
            "undefined": "a replicate that draws no pixel of a mapped class leaves the "
                         "estimates that need that class undefined; intervals come from the "
                         "replicates where they are defined",
        },
        "total_area": total_area,
        "overall_accuracy": _estimate(
            census.overall_accuracy, reps.overall_accuracy if reps is not None else None),
        "per_class": {},
    }
    if len(tally.blocks) == 1 and tally.n_replicates > 0:
        adjusted["bootstrap"]["warning"] = (
            "one block: no interval; use a smaller --bootstrap-block")
    elif 1 < len(tally.blocks) < 30:
        adjusted["bootstrap"]["warning"] = (
            f"only {len(tally.blocks)} blocks: intervals from so few blocks understate the "
            "uncertainty; use a smaller --bootstrap-block")
    for i, name in enumerate(names):
        proportion = _estimate(census.area_proportion,
                               reps.area_proportion if reps is not None else None, i)
        adjusted["per_class"][name] = {
            "mapped_area": float(mapped[i]),
            "mapped_proportion": float(mapped[i] / total_area) if total_area else None,
            "area_proportion": proportion,
            "area": _scaled(proportion, total_area),
            "users_accuracy": _estimate(
                census.users_accuracy, reps.users_accuracy if reps is not None else None, i),
            "producers_accuracy": _estimate(
                census.producers_accuracy,
                reps.producers_accuracy if reps is not None else None, i),
        }
    ref_total = c.sum(axis=1)
    major = int(np.argmax(ref_total)) if pixels else 0
    present = ref_total > 0
    base_iou = np.zeros(len(names))
    if pixels:
        base_iou[major] = ref_total[major] / pixels
    return {
        "classes": classes.describe(),
        "only_in_predictions": classes.only_on(PREDICTIONS),
        "only_in_labels": classes.only_on(LABELS),
        "pixels": pixels,
        "confusion_matrix": {"rows": "reference", "columns": "predicted",
                             "pixels": c.tolist(), "area": a.tolist()},
        "overall_accuracy": overall_accuracy(c),
        "kappa": cohen_kappa(c),
        "miou": float(np.nanmean(m.iou)) if np.isfinite(m.iou).any() else None,
        "macro_f1": float(np.nanmean(m.f1)) if np.isfinite(m.f1).any() else None,
        "per_class": per_class,
        "baseline": {
            "rule": f"every pixel '{names[major]}' (the most frequent reference class)"
                    if pixels else None,
            "overall_accuracy": float(ref_total[major] / pixels) if pixels else None,
            "miou": float(base_iou.sum() / max(int(present.sum()), 1)),
        },
        "area_adjusted": adjusted,
    }


def score_class_raster(predictions: str | Path, labels: str | Path, opts: ScoreOptions, *,
                       quiet: bool = True) -> dict[str, Any]:
    """Score a class raster: the content of score.json (without its header).

    See :func:`tally_class_raster` for the arguments and errors.
    """
    tally, classes, record = tally_class_raster(str(predictions), str(labels), opts,
                                                quiet=quiet)
    if tally.counts.sum() == 0:
        raise InputError(f"{predictions}: no pixel has both a prediction and a reference "
                         f"(excluded: {record['excluded']}); check that {labels} overlaps "
                         "the predictions" + (" and the area of interest" if opts.aoi else ""))
    return {"kind": "class_raster", **record, **summarize(tally, classes, opts)}
