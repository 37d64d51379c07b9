"""What the tasks whose model returns class logits share: a class loss, argmax predictions."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from geovision.engine.tasks import Batch, EngineTask
from geovision.errors import ConfigError

if TYPE_CHECKING:
    from geovision.data.dataset import TileDataset
    from geovision.data.info import TileInfo
    from geovision.engine.config import LossConfig
    from geovision.engine.losses import ClassLoss

log = logging.getLogger(__name__)


class LogitsTask(EngineTask):
    """A task whose model maps images to class logits ``(N, K, ...)``.

    Attributes:
        per_class: the metric reported per class as ``<per_class>/<name>``.
        dice: the Dice loss applies (per-pixel classes).
    """

    per_class: str
    dice: bool = False

    def loss(self, model: nn.Module, batch: Batch, criterion: ClassLoss | None) -> torch.Tensor:
        """``criterion`` of the logits and the target."""
        if criterion is None:
            raise ValueError(f"{self.name}: a loss function is needed")
        loss: torch.Tensor = criterion(model(batch.images), batch.target)
        return loss

    def predict(self, model: nn.Module, batch: Batch,
                criterion: ClassLoss | None) -> tuple[Any, torch.Tensor | None]:
        """Class ids (the logits' argmax) and the loss when ``criterion`` is given."""
        logits = model(batch.images)
        loss = criterion(logits, batch.target) if criterion is not None else None
        return logits.argmax(dim=1), loss

    def criterion(self, loss: LossConfig | None, info: TileInfo, train_ds: TileDataset | None,
                  device: torch.device) -> ClassLoss | None:
        """Cross-entropy and/or Dice, with class weights and label smoothing as configured.

        Raises:
            ConfigError: Dice for a task without per-pixel classes, or class weights of the
                wrong length.
        """
        from geovision.engine.losses import ClassLoss

        if loss is None:
            return ClassLoss("ce", weight=None, ignore_index=info.ignore_index).to(device)
        if "dice" in loss.name and not self.dice:
            raise ConfigError(f"train.loss.name: dice applies to segmentation; use ce for "
                              f"{self.name}")
        weight = None
        if loss.class_weights == "auto":
            assert train_ds is not None
            counts = train_ds.task.class_counts(train_ds)
            freq = counts / max(counts.sum(), 1)
            present = freq[freq > 0]
            median = float(np.median(present)) if len(present) else 1.0
            weight = torch.tensor(np.where(freq > 0, median / np.maximum(freq, 1e-12), 0.0),
                                  dtype=torch.float32)
            log.info("class weights (median frequency): %s",
                     ", ".join(f"{n} {w:.3g}" for n, w in zip(info.class_names, weight.tolist(),
                                                              strict=True)))
        elif loss.class_weights is not None:
            if len(loss.class_weights) != info.num_classes:
                raise ConfigError(f"train.loss.class_weights: {len(loss.class_weights)} values "
                                  f"for {info.num_classes} classes "
                                  f"({', '.join(info.class_names)})")
            weight = torch.tensor(loss.class_weights, dtype=torch.float32)
        return ClassLoss(loss.name, weight=weight, ignore_index=info.ignore_index,
                         label_smoothing=loss.label_smoothing,
                         dice_weight=loss.dice_weight).to(device)

    def metric_values(self, values: dict[str, torch.Tensor],
                      names: list[str]) -> dict[str, float]:
        """Every metric as a float; the per-class one as ``<per_class>/<name>``."""
        out: dict[str, float] = {}
        for key, value in values.items():
            if key == self.per_class:
                for name, v in zip(names, value.tolist(), strict=True):
                    out[f"{self.per_class}/{name}"] = float(v)
            else:
                out[key] = float(value)
        return out
