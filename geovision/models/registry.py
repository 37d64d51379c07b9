"""Architecture registry: (task, name, params) -> ``nn.Module`` fitted to bands and classes.

Conventions shared by every architecture (training and inference rely on them):

* inputs are float32 ``(N, bands, H, W)`` already normalized with the dataset's per-band
  mean and std; ``num_classes`` counts the background class 0;
* classification: ``model(x)`` returns logits ``(N, num_classes)``;
* segmentation: ``model(x)`` returns logits ``(N, num_classes, H, W)`` at input size;
* detection: ``model(list_of_images[, targets])``, torchvision style; in eval mode one dict
  per image with ``boxes`` (xyxy, input pixels), ``scores``, ``labels`` (ids >= 1).

Pretrained weights are never downloaded: ``params: {weights: /local/file.pth}`` loads a local
state dict, adapting the stem convolution when the band count differs.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import torchvision
from torch import nn

from geovision.errors import InputError
from geovision.models.adapt import load_pretrained, set_in_channels
from geovision.models.detection import DETECTORS
from geovision.models.unet import UNet
from geovision.tasks import TASK_NAMES as TASKS

Builder = Callable[..., nn.Module]


class SegmentationOutput(nn.Module):
    """Wrap a torchvision segmentation model so that it returns the ``out`` logits only."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Any) -> Any:
        """Logits ``(N, num_classes, H, W)``."""
        return self.model(x)["out"]


def _classifier(name: str) -> Builder:
    def build(*, in_channels: int, num_classes: int, params: dict[str, Any]) -> nn.Module:
        model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes,
                                                  **params)
        return set_in_channels(model, in_channels)

    return build


def _tv_segmenter(name: str) -> Builder:
    def build(*, in_channels: int, num_classes: int, params: dict[str, Any]) -> nn.Module:
        fn = getattr(torchvision.models.segmentation, name)
        extra = {} if name.startswith("lraspp") else {"aux_loss": False}
        model = fn(weights=None, weights_backbone=None, num_classes=num_classes,
                   **extra, **params)
        return SegmentationOutput(set_in_channels(model, in_channels))

    return build


def _unet(*, in_channels: int, num_classes: int, params: dict[str, Any]) -> nn.Module:
    return UNet(in_channels, num_classes, **params)


_REGISTRY: dict[str, dict[str, Builder]] = {
    "classification": {n: _classifier(n) for n in (
        "resnet18", "resnet34", "resnet50", "resnet101",
        "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
        "convnext_tiny", "convnext_small", "mobilenet_v3_small", "mobilenet_v3_large",
    )},
    "segmentation": {
        "unet": _unet,
        **{n: _tv_segmenter(n) for n in (
            "deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
            "fcn_resnet50", "fcn_resnet101", "lraspp_mobilenet_v3_large",
        )},
    },
    "detection": dict(DETECTORS),
}


def architectures(task: str) -> list[str]:
    """Registered architecture names for a task.

    Raises:
        InputError: the task is unknown.
    """
    if task not in _REGISTRY:
        raise InputError(f"unknown task '{task}'; tasks are: {', '.join(TASKS)}")
    return sorted(_REGISTRY[task])


def build_model(task: str, name: str, *, in_channels: int, num_classes: int,
                params: dict[str, Any] | None = None) -> nn.Module:
    """Build architecture ``name`` for ``task``, fitted to the band and class counts.

    Args:
        task: classification, segmentation or detection.
        name: a name from :func:`architectures`.
        in_channels: band count of the input.
        num_classes: class count, background (class 0) included.
        params: constructor parameters of the architecture; ``weights`` names a local file of
            pretrained weights (see :func:`geovision.models.adapt.load_pretrained`).

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        InputError: unknown task or name (the message lists the valid names), or parameters
            the architecture does not accept.
    """
    valid = architectures(task)
    if name not in _REGISTRY[task]:
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InputError(f"model.name: unknown {task} architecture '{name}'{hint}; valid names: "
                         f"{', '.join(valid)}")
    if in_channels < 1 or num_classes < 2:
        raise InputError(f"model {name}: needs at least 1 band and 2 classes (background "
                         f"included), got {in_channels} bands and {num_classes} classes")
    kwargs = dict(params or {})
    weights = kwargs.pop("weights", None)
    try:
        model = _REGISTRY[task][name](in_channels=in_channels, num_classes=num_classes,
                                      params=kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"model.params: {name} does not accept these parameters "
                         f"{kwargs}: {exc}") from exc
    if weights:
        load_pretrained(model, weights)
    return model
