"""What the training loop does differently per task: one :class:`EngineTask` per task.

The loop (:mod:`geovision.engine.trainer`, :mod:`geovision.engine.evaluator`) moves a batch to
the device, computes a loss, predicts, measures and draws previews through the task's
object, in ``<task>.py`` beside this module, found through :data:`geovision.tasks.TASKS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from geovision.tasks import get_task

if TYPE_CHECKING:
    import numpy as np
    from torchmetrics import Metric

    from geovision.data.dataset import TileDataset
    from geovision.data.info import TileInfo
    from geovision.engine.config import LossConfig
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


@dataclass(frozen=True)
class PreviewStyle:
    """How a tile, its truth and its prediction are drawn (see ``plot_previews``).

    Attributes:
        names: class names by id.
        colors: class colours by id.
        cmap: a colormap indexed by class id.
        ignore_index: mask value drawn transparent.
        score_threshold: lowest detection score drawn.
    """

    names: list[str]
    colors: list[str]
    cmap: Any
    ignore_index: int
    score_threshold: float = 0.5


class EngineTask(ABC):
    """What training, evaluation and their figures do differently for a task.

    Attributes:
        name: the task.
        monitor: the validation metric that picks the best checkpoint by default.
        panels: axes per tile in the validation previews (a row of them, or one).
    """

    name: str
    monitor: str
    panels: int = 1

    def to_device(self, batch: dict[str, Any], device: torch.device,
                  normalize: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Batch:
        """Move a collated batch to ``device`` and pick its target.

        Images and masks travel in their stored dtypes when the dataset defers normalization
        (uint8 is a quarter of float32's bytes); ``normalize`` (the dataset's
        ``batch_normalize``) then runs on the device.
        """
        images = batch["image"].to(device, non_blocking=True)
        if normalize is not None:
            images = normalize(images)
        return Batch(images=images, target=self.target(batch, device), index=batch["index"])

    @abstractmethod
    def target(self, batch: dict[str, Any], device: torch.device) -> Any:
        """The batch's target on the device, as the model's loss and the metrics take it."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch, criterion: ClassLoss | None) -> torch.Tensor:
        """The training loss of a batch (model in training mode)."""

    @abstractmethod
    def predict(self, model: nn.Module, batch: Batch,
                criterion: ClassLoss | None) -> tuple[Any, torch.Tensor | None]:
        """Predictions of a batch (model in eval mode) and its loss when the task has one."""

    def predict_scores(self, model: nn.Module, batch: Batch, criterion: ClassLoss | None
                       ) -> tuple[Any, torch.Tensor | None, torch.Tensor | None]:
        """Like :meth:`predict`, with the class probabilities ``(N, K, ...)``.

        None instead of probabilities when the model gives none (detections carry their
        own scores).
        """
        pred, loss = self.predict(model, batch, criterion)
        return pred, loss, None

    def baseline(self, confusion: torch.Tensor, names: list[str]) -> dict[str, float]:
        """The metrics of always predicting the most frequent true class (empty: none).

        Args:
            confusion: the confusion matrix of the evaluation (rows truth).
            names: class names by id.
        """
        return {}

    def criterion(self, loss: LossConfig | None, info: TileInfo, train_ds: TileDataset | None,
                  device: torch.device) -> ClassLoss | None:
        """The loss function of the task (None: the model computes its own).

        Args:
            loss: the ``train.loss`` config (None: plain cross-entropy, for evaluation).
            info: the tile store's description.
            train_ds: the training split (for ``class_weights: auto``).
            device: where the loss's weights live.
        """
        return None

    @abstractmethod
    def metrics(self, num_classes: int, ignore_index: int) -> tuple[Any, Metric | None]:
        """The task's torchmetrics collection and confusion matrix (or None)."""

    @abstractmethod
    def metric_values(self, values: dict[str, torch.Tensor], names: list[str],
                      confusion: torch.Tensor | None = None) -> dict[str, float]:
        """The computed collection as flat ``{name: value}`` (``iou/<class>``, ...).

        Args:
            values: the computed torchmetrics collection.
            names: class names by id.
            confusion: the confusion matrix (rows truth), when the task has one: a class
                absent from both truth and prediction gets NaN (null in JSON) per class.
        """

    @abstractmethod
    def draw_preview(self, axes: list[Any], rgb: np.ndarray, target: Any, pred: Any,
                     style: PreviewStyle) -> None:
        """Draw one validation tile, its truth and its prediction on ``axes`` (``panels``)."""


def for_task(name: str) -> EngineTask:
    """The engine object of task ``name``.

    Raises:
        InputError: no such task.
    """
    return cast(EngineTask, get_task(name).stage("engine"))
