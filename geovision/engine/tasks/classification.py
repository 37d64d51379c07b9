"""Classification in the training loop: tile labels, accuracy and F1, titled previews."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from geovision.engine.tasks import PreviewStyle
from geovision.engine.tasks.logits import LogitsTask

if TYPE_CHECKING:
    from torchmetrics import Metric


class Classification(LogitsTask):
    """Targets: class ids ``(N,)`` int64."""

    name = "classification"
    monitor = "val/accuracy"
    per_class = "f1"
    accuracy = "accuracy"
    average = "f1_macro"

    def target(self, batch: dict[str, Any], device: torch.device) -> Any:
        """The tiles' class ids on the device."""
        return batch["label"].to(device, non_blocking=True)

    def metrics(self, num_classes: int, ignore_index: int) -> tuple[Any, Metric | None]:
        """``accuracy``, ``f1_macro``, ``f1`` per class; a confusion matrix."""
        n = num_classes
        collection = MetricCollection({
            "accuracy": MulticlassAccuracy(n, average="micro"),
            "f1_macro": MulticlassF1Score(n, average="macro"),
            "f1": MulticlassF1Score(n, average="none"),
        })
        return collection, MulticlassConfusionMatrix(n)

    def draw_preview(self, axes: list[Any], rgb: np.ndarray, target: Any, pred: Any,
                     style: PreviewStyle) -> None:
        """The image titled ``truth -> prediction`` (green when right, red when wrong)."""
        ax = axes[0]
        ax.imshow(rgb)
        t, p = int(target), int(pred)
        ax.set_title(f"{style.names[t]} -> {style.names[p]}", fontsize=8,
                     color="green" if t == p else "red")


TASK = Classification()
