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
        per_class: the metric reported per class as ``<per_class>/<name>`` (``iou`` or
            ``f1``).
        accuracy: the key of the (micro) accuracy.
        average: the key of the macro average of ``per_class``.
        dice: the Dice loss applies (per-pixel classes).
    """

    per_class: str
    accuracy: str
    average: str
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

    def predict_scores(self, model: nn.Module, batch: Batch, criterion: ClassLoss | None
                       ) -> tuple[Any, torch.Tensor | None, torch.Tensor | None]:
        """Class ids, the loss, and the softmax of the logits (one model call)."""
        logits = model(batch.images)
        loss = criterion(logits, batch.target) if criterion is not None else None
        return logits.argmax(dim=1), loss, logits.float().softmax(dim=1)

    def baseline(self, confusion: torch.Tensor, names: list[str]) -> dict[str, float]:
        """Accuracy, macro average and per-class metric of predicting the majority class.

        Computed from the truth counts (the confusion matrix's row sums) by
        :func:`~geovision.evaluation.estimators.class_metrics`, with the rule of the metrics
        themselves: a class absent from truth and prediction is NaN and left out of the
        average.
        """
        from geovision.evaluation.estimators import class_metrics

        truth = np.asarray(confusion.detach().cpu(), dtype=np.float64).sum(axis=1)
        total = float(truth.sum())
        if total == 0:
            return {}
        major = int(np.argmax(truth))
        matrix = np.zeros((len(truth), len(truth)))
        matrix[:, major] = truth
        m = class_metrics(matrix)
        per = m.iou if self.per_class == "iou" else m.f1
        out = {self.accuracy: float(truth[major] / total),
               self.average: float(np.nanmean(per))}
        out.update({f"{self.per_class}/{n}": float(v) for n, v in zip(names, per, strict=True)})
        return out

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
            log.info("class weights (median frequency of %s): %s",
                     "the store's class counts" if train_ds.task.counted in info.counts
                     else f"the {train_ds.split} split's tiles",
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

    def metric_values(self, values: dict[str, torch.Tensor], names: list[str],
                      confusion: torch.Tensor | None = None) -> dict[str, float]:
        """Every metric as a float; the per-class one as ``<per_class>/<name>``.

        A class absent from both truth and prediction (its row and column of ``confusion``
        are empty) has no per-class value: NaN, written as null, as ``geovision score``
        does; the macro averages (torchmetrics) leave such classes out.
        """
        absent: set[int] = set()
        if confusion is not None:
            c = confusion.detach().cpu()
            absent = {i for i in range(len(names))
                      if int(c[i, :].sum()) + int(c[:, i].sum()) == 0}
        out: dict[str, float] = {}
        for key, value in values.items():
            if key == self.per_class:
                for i, (name, v) in enumerate(zip(names, value.tolist(), strict=True)):
                    out[f"{self.per_class}/{name}"] = float("nan") if i in absent else float(v)
            else:
                out[key] = float(value)
        return out
