"""Detection in the training loop: box targets, the detector's own losses, mAP, box previews."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torchmetrics.detection import MeanAveragePrecision

from geovision.engine.tasks import Batch, EngineTask, PreviewStyle

if TYPE_CHECKING:
    from torchmetrics import Metric

    from geovision.engine.losses import ClassLoss


def _finite(value: torch.Tensor) -> float:
    v = float(value)
    return v if math.isfinite(v) and v >= 0 else 0.0


class Detection(EngineTask):
    """Targets: one ``{boxes, labels}`` per image; torchvision-style detectors."""

    name = "detection"
    monitor = "val/map_50"

    def target(self, batch: dict[str, Any], device: torch.device) -> Any:
        """One ``{boxes, labels}`` per image, on the device."""
        return [{"boxes": b.to(device), "labels": lab.to(device)}
                for b, lab in zip(batch["boxes"], batch["labels"], strict=True)]

    def loss(self, model: nn.Module, batch: Batch, criterion: ClassLoss | None) -> torch.Tensor:
        """The sum of the detector's own losses (model in training mode)."""
        losses = model(list(batch.images), batch.target)
        total: torch.Tensor = sum(losses.values(), batch.images.new_zeros(()))
        return total

    def predict(self, model: nn.Module, batch: Batch,
                criterion: ClassLoss | None) -> tuple[Any, torch.Tensor | None]:
        """Torchvision detection dicts per image; no loss in eval mode."""
        return model(list(batch.images)), None

    def metrics(self, num_classes: int, ignore_index: int) -> tuple[Any, Metric | None]:
        """MAP (torchmetrics), per class too; no confusion matrix."""
        return MeanAveragePrecision(iou_type="bbox", class_metrics=True), None

    def metric_values(self, values: dict[str, torch.Tensor], names: list[str],
                      confusion: torch.Tensor | None = None) -> dict[str, float]:
        """``map_50``, ``map``, ``map_75`` and ``ap/<class>`` (NaN for classes never seen)."""
        out: dict[str, float] = {key: _finite(values[key]) for key in ("map_50", "map", "map_75")}
        classes = values.get("classes")
        per_class = values.get("map_per_class")
        if classes is not None and per_class is not None:
            for cid, ap in zip(classes.reshape(-1).tolist(), per_class.reshape(-1).tolist(),
                               strict=False):
                if 0 <= cid < len(names):
                    out[f"ap/{names[cid]}"] = ap if ap >= 0 else float("nan")
        return out

    def draw_preview(self, axes: list[Any], rgb: np.ndarray, target: Any, pred: Any,
                     style: PreviewStyle) -> None:
        """Truth boxes dashed white; predicted boxes in class colours with their scores."""
        from matplotlib.patches import Rectangle

        ax = axes[0]
        ax.imshow(rgb)
        for box in target["boxes"].cpu().tolist():
            ax.add_patch(Rectangle((box[0] - 0.5, box[1] - 0.5), box[2] - box[0],
                                   box[3] - box[1], fill=False, ec="white", ls="--", lw=1))
        for box, score, lab in zip(pred["boxes"].cpu().tolist(), pred["scores"].cpu().tolist(),
                                   pred["labels"].cpu().tolist(), strict=True):
            if score < style.score_threshold:
                continue
            color = style.colors[lab] if 0 <= lab < len(style.colors) else "red"
            ax.add_patch(Rectangle((box[0] - 0.5, box[1] - 0.5), box[2] - box[0],
                                   box[3] - box[1], fill=False, ec=color, lw=1.5))
            ax.text(box[0], box[1], f"{score:.2f}", color=color, fontsize=6, va="bottom")


TASK = Detection()
