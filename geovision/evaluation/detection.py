"""Scoring detections (boxes in map coordinates) against reference objects over a scene.

* Both sides are boxes: the bounds of each feature in the CRS they are matched in. That CRS
  is the detections' when it is projected; else (RFC 7946 GeoJSON is WGS 84) the labels'
  when projected; else the UTM zone of the labels' centre. Boxes are then shifted to the
  scene's lower-left corner, so that single-precision coordinates keep sub-millimetre
  precision in torchmetrics.
* Only objects and detections whose box centre lies in the extent (``--scene``'s footprint,
  or the scene named by the ``<stem>.json`` summary beside the detections) and in the area of
  interest are scored.
* Precision, recall and F1 at IoU 0.5 count matches made by
  :func:`~geovision.evaluation.matching.match_boxes`; mAP@0.5 and mAP@[.5:.95] (per class
  and mean over classes with objects) come from torchmetrics' ``MeanAveragePrecision``, with
  every detection of the scene considered (``max_detection_thresholds`` raised to their
  count).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Transformer

from geovision.errors import InputError, InputFileError
from geovision.evaluation.classes import LABELS, PREDICTIONS, ClassList
from geovision.evaluation.curves import write_detection_curves
from geovision.evaluation.matching import MATCH_IOU, DetectionMatches
from geovision.geo.aoi import read_aoi
from geovision.geo.raster import open_raster
from geovision.geo.vector import read_labels
from geovision.options.score import ScoreOptions

log = logging.getLogger(__name__)

#: The suffix of geovision's detection files.
DETECTIONS_SUFFIX = ".detections.geojson"


def _summary_beside(path: Path) -> dict[str, Any] | None:
    """The ``<stem>.json`` run summary that geovision infer writes beside its outputs."""
    if not path.name.endswith(DETECTIONS_SUFFIX):
        return None
    side = path.with_name(path.name[: -len(DETECTIONS_SUFFIX)] + ".json")
    try:
        doc = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("geovision", {}).get("format") != "inference":
        return None
    doc["_path"] = str(side)
    return doc


def read_detections(path: str) -> tuple[gpd.GeoDataFrame, dict[str, Any] | None]:
    """Read a detections file and the run summary beside it (if any).

    Raises:
        InputFileError: the file cannot be read.
        InputError: it lacks the ``score`` or ``class`` properties.
    """
    try:
        frame = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:
        raise InputFileError(f"{path}: not a vector file OGR can read "
                             f"({str(exc).splitlines()[0]})") from exc
    if frame.crs is None:
        frame = frame.set_crs("EPSG:4326")       # RFC 7946 GeoJSON: WGS 84
    summary = _summary_beside(Path(path))
    if len(frame):
        if "score" not in frame.columns:
            raise InputError(f"{path}: detections need a 'score' property; found "
                             f"{', '.join(c for c in frame.columns if c != 'geometry')}")
        if "class" not in frame.columns:
            names = _model_names(summary)
            if "class_id" not in frame.columns or names is None:
                raise InputError(f"{path}: detections need a 'class' property (a class "
                                 "name), or 'class_id' with the <stem>.json summary beside "
                                 "them")
            frame["class"] = [names.get(int(i), str(int(i))) for i in frame["class_id"]]
        frame["class"] = frame["class"].astype(str)
    return frame, summary


def _model_names(summary: dict[str, Any] | None) -> dict[int, str] | None:
    if summary is None:
        return None
    classes = summary.get("model", {}).get("classes")
    if not classes:
        return None
    return {int(c["id"]): str(c["name"]) for c in classes}


def match_crs(pred_crs: Any, labels: gpd.GeoDataFrame) -> ProjCRS:
    """The projected CRS that boxes are matched in (see the module's docstring)."""
    p = ProjCRS.from_user_input(pred_crs)
    if p.is_projected:
        return p
    lab = ProjCRS.from_user_input(labels.crs)
    if lab.is_projected:
        return lab
    utm = labels.to_crs("EPSG:4326").estimate_utm_crs()
    if utm is None:
        raise InputError("no projected CRS to match boxes in: give the labels in a projected "
                         "CRS")
    return ProjCRS.from_user_input(utm)


def _footprint(transform: Affine, width: int, height: int, crs: Any, target: ProjCRS) -> Any:
    """A raster's footprint as a polygon in ``target`` (edges densified before reprojection)."""
    x0, y0 = transform @ (0, 0)
    x1, y1 = transform @ (width, height)
    box = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    src = ProjCRS.from_user_input(crs)
    if src.equals(target):
        return box
    box = shapely.segmentize(box, max(abs(x1 - x0), abs(y1 - y0)) / 64)
    tr = Transformer.from_crs(src, target, always_xy=True)
    return shapely.transform(box, lambda xy: np.column_stack(tr.transform(xy[:, 0],
                                                                         xy[:, 1])))


def _extent(opts: ScoreOptions, summary: dict[str, Any] | None, target: ProjCRS
            ) -> tuple[Any, dict[str, Any] | None]:
    """The footprint objects must lie in, and its record for score.json."""
    if opts.scene is not None:
        info = open_raster(opts.scene)
        poly = _footprint(info.transform, info.width, info.height, info.crs.to_wkt(), target)
        return poly, {"from": "--scene", "path": opts.scene}
    scene = summary.get("scene") if summary else None
    if scene and all(k in scene for k in ("crs", "transform", "width", "height")):
        poly = _footprint(Affine(*scene["transform"][:6]), int(scene["width"]),
                          int(scene["height"]), scene["crs"], target)
        return poly, {"from": summary["_path"] if summary else None,
                      "path": scene.get("path")}
    return None, None


def _centres_inside(geoms: np.ndarray, area: Any) -> np.ndarray:
    b = shapely.bounds(geoms)
    return shapely.contains_xy(area, (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2)


def _map(preds: list[dict[str, Any]], truth: list[dict[str, Any]], iou: list[float] | None,
         n_dets: int) -> dict[str, Any]:
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type="bbox", iou_thresholds=iou, class_metrics=True,
                                  max_detection_thresholds=[1, 10, max(100, n_dets)])
    metric.update(preds, truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values: dict[str, Any] = metric.compute()
    return values


def _per_class_ap(values: dict[str, Any], k: int) -> np.ndarray:
    out = np.full(k, np.nan)
    classes = values["classes"].reshape(-1).tolist()
    aps = values["map_per_class"].reshape(-1).tolist()
    for cid, ap in zip(classes, aps, strict=False):
        if 0 <= cid < k and ap >= 0:
            out[int(cid)] = ap
    return out


def score_detections(predictions: str, labels: str, opts: ScoreOptions, out_dir: Path
                     ) -> dict[str, Any]:
    """Score a detections file: the content of score.json (without its header).

    Also writes ``pr_curve.png`` and ``curves.json`` in ``out_dir``.

    Raises:
        InputError: an input does not fit (missing properties, classes, CRS).
        InputFileError: an input cannot be read.
    """
    import torch

    found, summary = read_detections(predictions)
    classes = ClassList()
    model_names = _model_names(summary) or {}
    for cid, name in sorted(model_names.items()):
        if name != "background":
            classes.add(name, PREDICTIONS, cid)
    for name in dict.fromkeys(found["class"].tolist() if len(found) else []):
        classes.add(name, PREDICTIONS)
    lab = read_labels(labels, layer=opts.layer, class_field=opts.class_field)
    if opts.class_field is None:
        objects_of = classes.on(PREDICTIONS)
        if len(objects_of) > 1:
            raise InputError(f"{labels}: give --class-field: without it every feature is one "
                             f"class, but the detections have {len(objects_of)} classes "
                             f"({', '.join(objects_of[:10])})")
        label_names = {1: objects_of[0] if objects_of else str(lab.classes[1]["name"])}
    else:
        label_names = {int(c["id"]): str(c["name"]) for c in lab.classes[1:]}
    to_index = {cid: classes.add(name, LABELS) for cid, name in label_names.items()}
    crs = match_crs(found.crs, lab.frame)
    truth = lab.frame.to_crs(crs)
    det = found.to_crs(crs) if len(found) else found
    t_geoms = np.asarray(truth.geometry.values)
    p_geoms = np.asarray(det.geometry.values) if len(det) else np.zeros(0, dtype=object)
    t_keep = np.ones(len(t_geoms), dtype=bool)
    p_keep = np.ones(len(p_geoms), dtype=bool)
    extent, extent_record = _extent(opts, summary, crs)
    areas = [extent] if extent is not None else []
    if opts.aoi is not None:
        areas.append(read_aoi(opts.aoi).in_crs(crs))
    for area in areas:
        t_keep &= _centres_inside(t_geoms, area)
        if len(p_geoms):
            p_keep &= _centres_inside(p_geoms, area)
    t_boxes = shapely.bounds(t_geoms[t_keep]).reshape(-1, 4)
    t_labels = np.array([to_index[int(c)] for c in truth["class_id"]], np.int64)[t_keep]
    p_boxes = shapely.bounds(p_geoms[p_keep]).reshape(-1, 4)
    p_scores = (det["score"].to_numpy(np.float64)[p_keep] if len(det) else np.zeros(0))
    p_labels = (np.array([classes.index(n) for n in det["class"]], np.int64)[p_keep]
                if len(det) else np.zeros(0, np.int64))
    every = np.concatenate([t_boxes, p_boxes]) if len(t_boxes) + len(p_boxes) else None
    origin = np.floor(every.min(axis=0)[:2]) if every is not None else np.zeros(2)
    shift = np.concatenate([origin, origin])
    k = len(classes)
    matches = DetectionMatches(k, MATCH_IOU)
    matches.update(p_boxes, p_scores, p_labels, t_boxes, t_labels)
    tp, fp, fn = matches.counts()
    preds = [{"boxes": torch.as_tensor(p_boxes - shift, dtype=torch.float32),
              "scores": torch.as_tensor(p_scores, dtype=torch.float32),
              "labels": torch.as_tensor(p_labels)}]
    targets = [{"boxes": torch.as_tensor(t_boxes - shift, dtype=torch.float32),
                "labels": torch.as_tensor(t_labels)}]
    coco = _map(preds, targets, None, len(p_boxes))
    coco50 = _map(preds, targets, [0.5], len(p_boxes))
    ap_all, ap_50 = _per_class_ap(coco, k), _per_class_ap(coco50, k)
    has_objects = matches.objects > 0
    ap_all[~has_objects] = np.nan
    ap_50[~has_objects] = np.nan
    curves = write_detection_curves(matches, classes.names, out_dir,
                                    title=Path(predictions).name)

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    per_class = {}
    for i, name in enumerate(classes.names):
        precision, recall = ratio(tp[i], tp[i] + fp[i]), ratio(tp[i], tp[i] + fn[i])
        f1 = ratio(2 * tp[i], 2 * tp[i] + fp[i] + fn[i])
        per_class[name] = {
            "objects": int(matches.objects[i]), "detections": int(tp[i] + fp[i]),
            "tp": int(tp[i]), "fp": int(fp[i]), "fn": int(fn[i]), "precision": precision,
            "recall": recall, "f1": f1, "ap_50": float(ap_50[i]), "ap": float(ap_all[i])}
    stp, sfp, sfn = int(tp.sum()), int(fp.sum()), int(fn.sum())
    return {
        "kind": "detections",
        "predictions": {"path": predictions, "crs": ProjCRS.from_user_input(found.crs).to_wkt(),
                        "features": len(found),
                        "summary": summary["_path"] if summary else None},
        "labels": {"form": "vector", **lab.describe()},
        "aoi": opts.aoi,
        "classes": classes.describe(),
        "only_in_predictions": classes.only_on(PREDICTIONS),
        "only_in_labels": classes.only_on(LABELS),
        "match": {"crs": crs.to_wkt(), "crs_name": crs.name, "epsg": crs.to_epsg(),
                  "iou_threshold": MATCH_IOU, "extent": extent_record,
                  "rule": "boxes are the bounds of each feature in this CRS; objects and "
                          "detections count when their box centre is in the extent and "
                          "area of interest; detections by decreasing score each take the "
                          "unmatched object of their class with the highest IoU"},
        "objects": len(t_boxes), "detections": len(p_boxes),
        "precision": ratio(stp, stp + sfp), "recall": ratio(stp, stp + sfn),
        "f1": ratio(2 * stp, 2 * stp + sfp + sfn),
        "map_50": float(coco["map_50"]) if float(coco["map_50"]) >= 0 else None,
        "map": float(coco["map"]) if float(coco["map"]) >= 0 else None,
        "per_class": per_class,
        "pr_curves": {name: c["average_precision"] for name, c in curves["classes"].items()},
        "baseline": {"rule": "no detection", "map_50": 0.0},
    }
