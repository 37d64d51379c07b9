"""Losses of classification and segmentation (detectors bring their own)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
              eps: float = 1.0) -> torch.Tensor:
    """Soft multi-class Dice loss, ``1 - mean_c (2|P_c ∩ T_c| + eps) / (|P_c| + |T_c| + eps)``.

    Pixels equal to ``ignore_index`` count for nothing; ``eps`` smooths classes absent from
    both prediction and truth.

    Args:
        logits: ``(N, C, H, W)``.
        target: ``(N, H, W)`` class ids.
        ignore_index: target value to leave out.
        eps: smoothing term.

    Returns:
        A scalar.
    """
    n_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1).to(logits.dtype)
    probs = logits.float().softmax(dim=1) * valid
    onehot = F.one_hot(target.clamp(0, n_classes - 1) * (target != ignore_index),
                       n_classes).permute(0, 3, 1, 2).to(probs.dtype) * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    return 1 - ((2 * inter + eps) / (total + eps)).mean()


class ClassLoss(nn.Module):
    """Cross-entropy (with ignore_index, class weights, label smoothing), Dice, or both.

    Args:
        name: ``ce``, ``dice`` or ``ce+dice``.
        weight: per-class weights of the cross-entropy, or None.
        ignore_index: target value left out.
        label_smoothing: cross-entropy label smoothing.
        dice_weight: factor of the Dice term in ``ce+dice``.
    """

    def __init__(self, name: str, *, weight: torch.Tensor | None, ignore_index: int,
                 label_smoothing: float = 0.0, dice_weight: float = 1.0) -> None:
        super().__init__()
        self.name = name
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.dice_weight = dice_weight
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of a batch."""
        total = logits.new_zeros((), dtype=torch.float32)
        if "ce" in self.name:
            total = total + F.cross_entropy(
                logits.float(), target, weight=self._weight(), ignore_index=self.ignore_index,
                label_smoothing=self.label_smoothing)
        if "dice" in self.name:
            factor = self.dice_weight if "ce" in self.name else 1.0
            total = total + factor * dice_loss(logits, target, self.ignore_index)
        return total

    def _weight(self) -> torch.Tensor | None:
        w = self.weight
        return w if isinstance(w, torch.Tensor) else None
