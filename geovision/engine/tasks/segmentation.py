"""Segmentation in the training loop: masks, mIoU, image | truth | prediction previews."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassJaccardIndex,
)

from geovision.engine.tasks import PreviewStyle
from geovision.engine.tasks.logits import LogitsTask

if TYPE_CHECKING:
    from torchmetrics import Metric


class Segmentation(LogitsTask):
    """Targets: masks ``(N, H, W)`` int64 with ``ignore_index`` pixels left out everywhere."""

    name = "segmentation"
    monitor = "val/miou"
    panels = 3
    per_class = "iou"
    accuracy = "pixel_accuracy"
    average = "miou"
    dice = True

    def target(self, batch: dict[str, Any], device: torch.device) -> Any:
        """The masks, made int64 on the device (they travel as uint8)."""
        return batch["mask"].to(device, non_blocking=True).long()

    def metrics(self, num_classes: int, ignore_index: int) -> tuple[Any, Metric | None]:
        """``miou``, ``iou`` per class, ``pixel_accuracy``; a confusion matrix."""
        n = num_classes
        collection = MetricCollection({
            "miou": MulticlassJaccardIndex(n, average="macro", ignore_index=ignore_index),
            "iou": MulticlassJaccardIndex(n, average="none", ignore_index=ignore_index),
            "pixel_accuracy": MulticlassAccuracy(n, average="micro", ignore_index=ignore_index),
        })
        return collection, MulticlassConfusionMatrix(n, ignore_index=ignore_index)

    def draw_preview(self, axes: list[Any], rgb: np.ndarray, target: Any, pred: Any,
                     style: PreviewStyle) -> None:
        """Image | truth | prediction, classes in their colours, half transparent."""
        truth = np.ma.masked_equal(np.asarray(target.cpu()), style.ignore_index)
        axes[0].imshow(rgb)
        axes[0].set_title("image", fontsize=8)
        for ax, lab, title in ((axes[1], truth, "truth"),
                               (axes[2], np.asarray(pred.cpu()), "prediction")):
            ax.imshow(rgb)
            ax.imshow(lab, cmap=style.cmap, vmin=0, vmax=len(style.names) - 1, alpha=0.5,
                      interpolation="nearest")
            ax.set_title(title, fontsize=8)


TASK = Segmentation()
