"""Validation metrics per task, computed with torchmetrics, reported as flat float dicts.

Keys (prefixed ``val/`` or ``test/`` by the caller):

* classification: ``accuracy``, ``f1_macro``, ``f1/<class>``;
* segmentation: ``miou``, ``pixel_accuracy``, ``iou/<class>`` (``ignore_index`` pixels are
  left out);
* detection: ``map_50`` (mAP at IoU 0.5), ``map`` (mAP@[.5:.95]), ``map_75``, ``ap/<class>``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)
from torchmetrics.detection import MeanAveragePrecision

#: The metric that picks the best checkpoint, by task (larger is better).
DEFAULT_MONITOR = {"classification": "val/accuracy", "segmentation": "val/miou",
                   "detection": "val/map_50"}


class TaskMetrics:
    """The metrics of one task over one pass of a split.

    Args:
        task: classification, segmentation or detection.
        class_names: names by class id (background included).
        ignore_index: mask value left out of segmentation metrics.
        device: where the metric states live.
    """

    def __init__(self, task: str, class_names: list[str], ignore_index: int,
                 device: torch.device) -> None:
        self.task = task
        self.names = class_names
        n = len(class_names)
        self.confusion: Metric | None = None
        self.collection: MetricCollection | MeanAveragePrecision
        if task == "classification":
            self.collection = MetricCollection({
                "accuracy": MulticlassAccuracy(n, average="micro"),
                "f1_macro": MulticlassF1Score(n, average="macro"),
                "f1": MulticlassF1Score(n, average="none"),
            })
            self.confusion = MulticlassConfusionMatrix(n)
        elif task == "segmentation":
            self.collection = MetricCollection({
                "miou": MulticlassJaccardIndex(n, average="macro", ignore_index=ignore_index),
                "iou": MulticlassJaccardIndex(n, average="none", ignore_index=ignore_index),
                "pixel_accuracy": MulticlassAccuracy(n, average="micro",
                                                     ignore_index=ignore_index),
            })
            self.confusion = MulticlassConfusionMatrix(n, ignore_index=ignore_index)
        else:
            self.collection = MeanAveragePrecision(iou_type="bbox", class_metrics=True)
        self.collection.to(device)
        if self.confusion is not None:
            self.confusion.to(device)

    def update(self, preds: Any, target: Any) -> None:
        """Add a batch: class ids ``(N[, H, W])`` or torchvision detection dicts."""
        self.collection.update(preds, target)
        if self.confusion is not None:
            self.confusion.update(preds, target)

    def compute(self) -> tuple[dict[str, float], torch.Tensor | None]:
        """Flat metric values and the confusion matrix (rows: truth, columns: prediction)."""
        values = self.collection.compute()
        out: dict[str, float] = {}
        if self.task == "detection":
            for key in ("map_50", "map", "map_75"):
                out[key] = _finite(values[key])
            classes = values.get("classes")
            per_class = values.get("map_per_class")
            if classes is not None and per_class is not None:
                for cid, ap in zip(classes.reshape(-1).tolist(), per_class.reshape(-1).tolist(),
                                   strict=False):
                    if 0 <= cid < len(self.names):
                        out[f"ap/{self.names[cid]}"] = ap if ap >= 0 else float("nan")
        else:
            per_key = "f1" if self.task == "classification" else "iou"
            for key, value in values.items():
                if key == per_key:
                    for name, v in zip(self.names, value.tolist(), strict=True):
                        out[f"{per_key}/{name}"] = float(v)
                else:
                    out[key] = float(value)
        matrix = self.confusion.compute().cpu() if self.confusion is not None else None
        return out, matrix

    def reset(self) -> None:
        """Forget every update."""
        self.collection.reset()
        if self.confusion is not None:
            self.confusion.reset()


def _finite(value: torch.Tensor) -> float:
    v = float(value)
    return v if math.isfinite(v) and v >= 0 else 0.0
