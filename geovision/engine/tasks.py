"""What differs between tasks in the loop: moving a batch, the loss, the predictions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from geovision.engine.losses import ClassLoss


@dataclass(frozen=True)
class Batch:
    """A batch on the device: images plus the target of its task."""

    images: torch.Tensor
    target: Any
    index: torch.Tensor

    @property
    def size(self) -> int:
        """Tiles in the batch."""
        return int(self.images.shape[0])


def to_device(task: str, batch: dict[str, Any], device: torch.device,
              normalize: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Batch:
    """Move a collated batch to ``device`` and pick its target.

    Images and masks travel in their stored dtypes when the dataset defers normalization
    (uint8 is a quarter of float32's bytes); ``normalize`` (the dataset's
    ``batch_normalize``) then runs on the device, and masks become int64 there.
    """
    images = batch["image"].to(device, non_blocking=True)
    if normalize is not None:
        images = normalize(images)
    target: Any
    if task == "classification":
        target = batch["label"].to(device, non_blocking=True)
    elif task == "segmentation":
        target = batch["mask"].to(device, non_blocking=True).long()
    else:
        target = [{"boxes": b.to(device), "labels": lab.to(device)}
                  for b, lab in zip(batch["boxes"], batch["labels"], strict=True)]
    return Batch(images=images, target=target, index=batch["index"])


def train_loss(task: str, model: nn.Module, batch: Batch,
               criterion: ClassLoss | None) -> torch.Tensor:
    """The training loss of a batch (model in training mode)."""
    if task == "detection":
        losses = model(list(batch.images), batch.target)
        return sum(losses.values(), batch.images.new_zeros(()))  # type: ignore[no-any-return]
    assert criterion is not None
    return criterion(model(batch.images), batch.target)  # type: ignore[no-any-return]


@torch.no_grad()
def predict(task: str, model: nn.Module, batch: Batch,
            criterion: ClassLoss | None) -> tuple[Any, torch.Tensor | None]:
    """Predictions of a batch (model in eval mode) and its loss when the task has one.

    Returns:
        Class ids ``(N)`` / ``(N, H, W)``, or torchvision detection dicts; and the loss.
    """
    if task == "detection":
        return model(list(batch.images)), None
    logits = model(batch.images)
    loss = criterion(logits, batch.target) if criterion is not None else None
    return logits.argmax(dim=1), loss
