"""Validation metrics per task, computed with torchmetrics, reported as flat float dicts.

Keys (prefixed ``val/`` or ``test/`` by the caller):

* classification: ``accuracy``, ``f1_macro``, ``f1/<class>``;
* segmentation: ``miou``, ``pixel_accuracy``, ``iou/<class>`` (``ignore_index`` pixels are
  left out);
* a class absent from both truth and prediction has NaN (null in JSON) per class, and the
  macro averages (``miou``, ``f1_macro``) leave it out;
* detection: ``map_50`` (mAP at IoU 0.5), ``map`` (mAP@[.5:.95]), ``map_75``, ``ap/<class>``.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from geovision.engine.tasks import for_task


class TaskMetrics:
    """The metrics of one task over one pass of a split (the task's, :mod:`.tasks`).

    Args:
        task: classification, segmentation or detection.
        class_names: names by class id (background included).
        ignore_index: mask value left out of segmentation metrics.
        device: where the metric states live.
    """

    def __init__(self, task: str, class_names: list[str], ignore_index: int,
                 device: torch.device) -> None:
        self.task = for_task(task)
        self.names = class_names
        self.collection: Any
        self.confusion: Metric | None
        self.collection, self.confusion = self.task.metrics(len(class_names), ignore_index)
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
        matrix = self.confusion.compute().cpu() if self.confusion is not None else None
        out = self.task.metric_values(self.collection.compute(), self.names, matrix)
        return out, matrix

    def reset(self) -> None:
        """Forget every update."""
        self.collection.reset()
        if self.confusion is not None:
            self.confusion.reset()
