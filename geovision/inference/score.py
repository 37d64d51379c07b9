"""Scoring a scene's predictions against vector labels, and what a trivial predictor scores.

mIoU comes from the class raster and mAP from the detections GeoJSON, both with torchmetrics.

Classes are matched by name, so labels whose file holds only some of the model's classes (and
so would number them differently) score correctly.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely
import torch
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from rasterio.windows import Window

from geovision.errors import InputError
from geovision.geo.vector import read_labels, to_crs

#: Rows scored at a time, so that a scene of any size is scored in bounded memory.
ROWS = 1024


def _model_ids(classes: list[dict[str, Any]], label_classes: list[dict[str, Any]],
               path: str) -> dict[int, int]:
    """Map the label file's class ids to the model's, by class name."""
    by_name = {c["name"]: int(c["id"]) for c in classes}
    missing = [c["name"] for c in label_classes[1:] if c["name"] not in by_name]
    if missing:
        raise InputError(f"{path}: classes {missing} are not classes of the model "
                         f"({', '.join(by_name)})")
    return {int(c["id"]): by_name.get(c["name"], 0) for c in label_classes}


def score_segmentation(
    prediction: str | os.PathLike[str], labels: str | os.PathLike[str], *,
    classes: list[dict[str, Any]], class_field: str | None, ignore_index: int = 255,
    layer: str | None = None,
) -> dict[str, Any]:
    """mIoU, per-class IoU and pixel accuracy of a class raster against label polygons.

    Pixels that are nodata in the prediction (255) are not scored. The baseline is the best
    constant prediction: every pixel the most frequent class.

    Returns:
        ``{"miou", "pixel_accuracy", "iou": {name: value}, "baseline_miou",
        "baseline_pixel_accuracy", "pixels"}``.
    """
    from torchmetrics.classification import MulticlassConfusionMatrix

    lab = read_labels(labels, layer=layer, class_field=class_field)
    k = len(classes)
    mapping = _model_ids(classes, lab.classes, lab.path)
    confusion = MulticlassConfusionMatrix(num_classes=k, ignore_index=ignore_index)
    with rasterio.open(prediction) as ds:
        local = to_crs(lab.frame, ds.crs)
        ids = [mapping[int(c)] for c in local["class_id"]]
        shapes = list(zip(local.geometry.values, ids, strict=True))
        tree = shapely.STRtree(local.geometry.values)
        for row in range(0, ds.height, ROWS):
            win = Window(0, row, ds.width, min(ROWS, ds.height - row))
            pred = ds.read(1, window=win)
            transform = ds.window_transform(win)
            bounds = rasterio.windows.bounds(win, ds.transform)
            hits = sorted(tree.query(shapely.box(*bounds)))
            truth = np.zeros(pred.shape, dtype=np.uint8)
            if hits:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    truth = rasterize([shapes[i] for i in hits], out_shape=pred.shape,
                                      transform=transform, fill=0, dtype="uint8")
            nodata = pred == ignore_index
            truth[nodata] = ignore_index
            guess = np.where(nodata, 0, pred).astype(np.int64)
            confusion.update(torch.from_numpy(guess), torch.from_numpy(truth.astype(np.int64)))
    matrix = confusion.compute().double()  # rows: truth, cols: prediction
    return _from_confusion(matrix, classes)


def _from_confusion(matrix: torch.Tensor, classes: list[dict[str, Any]]) -> dict[str, Any]:
    tp = matrix.diag()
    truth = matrix.sum(1)
    predicted = matrix.sum(0)
    union = truth + predicted - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.zeros_like(tp))
    pixels = float(matrix.sum())
    major = int(truth.argmax())
    base_iou = torch.zeros_like(tp)
    base_iou[major] = truth[major] / max(pixels, 1)
    n_present = int((truth > 0).sum())
    return {
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "pixel_accuracy": float(tp.sum() / max(pixels, 1)),
        "iou": {c["name"]: float(iou[i]) for i, c in enumerate(classes) if present[i]},
        "baseline": f"every pixel '{classes[major]['name']}'",
        "baseline_miou": float(base_iou.sum() / max(n_present, 1)),
        "baseline_pixel_accuracy": float(truth[major] / max(pixels, 1)),
        "pixels": int(pixels),
    }


def score_detections(
    detections: str | os.PathLike[str], labels: str | os.PathLike[str],
    scene: str | os.PathLike[str], *, classes: list[dict[str, Any]],
    class_field: str | None = None, layer: str | None = None,
) -> dict[str, Any]:
    """mAP@0.5 and mAP@[.5:.95] of a detections GeoJSON against label objects in a scene.

    Boxes are compared in the scene's pixel grid; label objects are clipped to the scene. A
    predictor that finds nothing scores 0, the baseline.
    """
    from torchmetrics.detection import MeanAveragePrecision

    lab = read_labels(labels, layer=layer, class_field=class_field)
    mapping = _model_ids(classes, lab.classes, lab.path)
    with rasterio.open(scene) as ds:
        crs, transform, width, height = ds.crs, ds.transform, ds.width, ds.height
    truth = to_crs(lab.frame, crs)
    t_boxes, t_keep = _pixel_boxes(np.asarray(truth.geometry.values), transform, width, height)
    t_labels = np.array([mapping[int(c)] for c in truth["class_id"]], dtype=np.int64)[t_keep]
    found = gpd.read_file(detections)
    if len(found):
        found = found.to_crs(crs.to_wkt()) if found.crs is not None else found
        p_boxes, p_keep = _pixel_boxes(np.asarray(found.geometry.values), transform, width,
                                       height)
        p_scores = found["score"].to_numpy(np.float32)[p_keep]
        p_labels = found["class_id"].to_numpy(np.int64)[p_keep]
    else:
        p_boxes, p_scores, p_labels = np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    metric = MeanAveragePrecision(iou_type="bbox")
    metric.update(
        [{"boxes": torch.as_tensor(p_boxes, dtype=torch.float32),
          "scores": torch.as_tensor(p_scores, dtype=torch.float32),
          "labels": torch.as_tensor(p_labels)}],
        [{"boxes": torch.as_tensor(t_boxes, dtype=torch.float32),
          "labels": torch.as_tensor(t_labels)}],
    )
    values = metric.compute()
    return {
        "map_50": float(values["map_50"]), "map": float(values["map"]),
        "detections": len(p_boxes), "objects": len(t_boxes),
        "baseline": "no detection", "baseline_map_50": 0.0,
    }


def _pixel_boxes(geoms: np.ndarray, transform: Any, width: int, height: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of geometries in scene pixels, clipped to the scene; which ones lie in it."""
    if len(geoms) == 0:
        return np.zeros((0, 4)), np.zeros(0, dtype=bool)
    b = shapely.bounds(geoms)
    inv = ~transform
    c0, r0 = inv @ (b[:, 0], b[:, 1])
    c1, r1 = inv @ (b[:, 2], b[:, 3])
    boxes = np.stack([np.minimum(c0, c1), np.minimum(r0, r1),
                      np.maximum(c0, c1), np.maximum(r0, r1)], axis=1)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return boxes[keep], keep


def summary_line(name: str, scores: dict[str, Any]) -> str:
    """One line stating a score against its baseline."""
    if "miou" in scores:
        return (f"{name}: mIoU {scores['miou']:.3f} (baseline {scores['baseline_miou']:.3f}, "
                f"{scores['baseline']}), pixel accuracy {scores['pixel_accuracy']:.3f}")
    return (f"{name}: mAP@0.5 {scores['map_50']:.3f}, mAP@[.5:.95] {scores['map']:.3f} "
            f"(baseline {scores['baseline_map_50']:.3f}, {scores['baseline']}); "
            f"{scores['detections']} detections of {scores['objects']} objects")
