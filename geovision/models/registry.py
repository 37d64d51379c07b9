"""Architecture registry: (task, name, params) -> ``nn.Module`` fitted to bands and classes.

Conventions shared by every architecture (training and inference rely on them):

* inputs are float32 ``(N, bands, H, W)`` already normalized with the dataset's per-band
  mean and std; ``num_classes`` counts the background class 0;
* classification: ``model(x)`` returns logits ``(N, num_classes)``;
* segmentation: ``model(x)`` returns logits ``(N, num_classes, H, W)`` at input size;
* detection: ``model(list_of_images[, targets])``, torchvision style; in eval mode one dict
  per image with ``boxes`` (xyxy, input pixels), ``scores``, ``labels`` (ids >= 1).

Names by task:

* classification: torchvision classifiers (``resnet18``, ``efficientnet_b0``...) and any
  timm model as ``timm:NAME`` (``timm:resnet18``, ``timm:convnext_tiny``);
* segmentation: ``unet`` (our compact U-Net; with ``encoder`` the smp U-Net),
  ``unetplusplus``, ``fpn``, ``deeplabv3plus``, ``upernet`` (smp, ``encoder``: any smp
  encoder or ``tu-NAME``, see :mod:`geovision.models.segmentation`) and torchvision's
  ``deeplabv3_*``, ``fcn_*``, ``lraspp_*``;
* detection: see :func:`geovision.models.detection.build_detector`.

Every architecture takes ``weights`` (a local file or a hub name, loaded by
:func:`geovision.models.weights.load_weights` with the stem mapped to the bands by name)
and ``weights_bands``. Building never downloads unless ``weights`` is a hub name, and a
bundle is rebuilt without ``weights``: from ``{name, params}`` and random initialisation.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torchvision
from torch import nn

from geovision.errors import InputError
from geovision.models.adapt import set_in_channels
from geovision.models.bands import band_names
from geovision.models.detection import DETECTORS, detector_hub
from geovision.models.hub import StateDict, timm_weights, torchvision_weights
from geovision.models.segmentation import SMP_ARCHITECTURES, build_smp, smp_hub
from geovision.models.unet import UNet
from geovision.models.weights import WeightsReport, load_weights
from geovision.tasks import TASK_NAMES as TASKS
from geovision.tasks import get_task

log = logging.getLogger(__name__)

#: Prefix of classification names that build a timm model.
TIMM_PREFIX = "timm:"
#: Params every architecture takes, handled here rather than by the builders.
WEIGHT_PARAMS = ("weights", "weights_bands")

Builder = Callable[..., nn.Module]
Hub = Callable[[dict[str, Any], str], StateDict]


@dataclass(frozen=True)
class Architecture:
    """A registry entry.

    Attributes:
        build: ``build(in_channels=, num_classes=, params=)`` -> the model, random weights.
        hub: ``hub(params, tag)`` -> RGB hub weights for it, or None (no hub weights).
    """

    build: Builder
    hub: Hub | None = None


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


def _timm_classifier(name: str) -> Builder:
    def build(*, in_channels: int, num_classes: int, params: dict[str, Any]) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=num_classes,
                                 in_chans=in_channels, **params)

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
    if "encoder" in params:
        return build_smp("unet", in_channels=in_channels, num_classes=num_classes,
                         params=params)
    return UNet(in_channels, num_classes, **params)


def _unet_hub(params: dict[str, Any], tag: str) -> StateDict:
    if "encoder" not in params:
        raise InputError("model.params.weights: our compact unet has no hub weights; give "
                         "model.params.encoder (e.g. resnet18) for a pretrained encoder")
    return smp_hub(params, tag)


def _tv_hub(backbone: str) -> Hub:
    return lambda params, tag: torchvision_weights(backbone, tag)


_CLASSIFIERS = ("resnet18", "resnet34", "resnet50", "resnet101",
                "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
                "convnext_tiny", "convnext_small", "mobilenet_v3_small", "mobilenet_v3_large")
_TV_SEGMENTERS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
                  "fcn_resnet50", "fcn_resnet101", "lraspp_mobilenet_v3_large")

_REGISTRY: dict[str, dict[str, Architecture | Builder]] = {
    "classification": {n: Architecture(_classifier(n), _tv_hub(n)) for n in _CLASSIFIERS},
    "segmentation": {
        "unet": Architecture(_unet, _unet_hub),
        **{n: Architecture(partial(build_smp, n), smp_hub)
           for n in SMP_ARCHITECTURES if n != "unet"},
        **{n: Architecture(_tv_segmenter(n), _tv_hub(n.split("_", 1)[1]))
           for n in _TV_SEGMENTERS},
    },
    "detection": {n: Architecture(b, partial(detector_hub, n)) for n, b in DETECTORS.items()},
}


def architectures(task: str) -> list[str]:
    """Registered architecture names for a task (classification also takes ``timm:NAME``).

    Raises:
        InputError: the task is unknown.
    """
    if task not in _REGISTRY:
        raise InputError(f"unknown task '{task}'; tasks are: {', '.join(TASKS)}")
    return sorted(_REGISTRY[task])


def architecture(task: str, name: str) -> Architecture:
    """The registry entry of ``name`` for ``task``.

    Raises:
        InputError: unknown task or name (the message lists the valid names).
    """
    valid = architectures(task)
    if get_task(task).target == "label" and name.startswith(TIMM_PREFIX):
        import timm

        model = name[len(TIMM_PREFIX):]
        if not timm.is_model(model):
            close = difflib.get_close_matches(model, timm.list_models(), n=3)
            hint = f" (did you mean {', '.join(TIMM_PREFIX + c for c in close)}?)" if close else ""
            raise InputError(f"model.name: timm has no model '{model}'{hint}")
        return Architecture(_timm_classifier(model),
                            lambda params, tag: timm_weights(model, tag))
    if name not in _REGISTRY[task]:
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        extra = ", timm:<any timm model>" if get_task(task).target == "label" else ""
        raise InputError(f"model.name: unknown {task} architecture '{name}'{hint}; valid names: "
                         f"{', '.join(valid)}{extra}")
    entry = _REGISTRY[task][name]
    # A bare builder (as tests register) is an architecture without hub weights.
    return entry if isinstance(entry, Architecture) else Architecture(entry)


def register(task: str, name: str, build: Builder, hub: Hub | None = None) -> None:
    """Add (or replace) architecture ``name`` of ``task`` in the registry.

    Raises:
        InputError: the task is unknown.
    """
    architectures(task)
    _REGISTRY[task][name] = Architecture(build, hub)


def build_model_with_weights(
    task: str, name: str, *, in_channels: int | None = None, num_classes: int,
    params: dict[str, Any] | None = None, bands: Sequence[Any] | None = None,
) -> tuple[nn.Module, WeightsReport | None]:
    """:func:`build_model`, also returning what loading ``params.weights`` did.

    Returns:
        The model and the weights report (None without ``weights``); the report is also
        logged at INFO, line by line.
    """
    arch = architecture(task, name)
    names = band_names(bands) if bands is not None else None
    if in_channels is None:
        if names is None:
            raise InputError(f"model {name}: give in_channels or bands")
        in_channels = len(names)
    if names is not None and len(names) != in_channels:
        raise InputError(f"model {name}: {len(names)} band names for {in_channels} bands")
    if in_channels < 1 or num_classes < 2:
        raise InputError(f"model {name}: needs at least 1 band and 2 classes (background "
                         f"included), got {in_channels} bands and {num_classes} classes")
    kwargs = dict(params or {})
    weights = kwargs.pop("weights", None)
    weights_bands = kwargs.pop("weights_bands", None)
    try:
        model = arch.build(in_channels=in_channels, num_classes=num_classes, params=kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"model.params: {name} does not accept these parameters "
                         f"{kwargs}: {exc}") from exc
    if weights in (None, False, ""):
        return model, None
    hub = None if arch.hub is None else partial(arch.hub, kwargs)
    report = load_weights(model, str(weights), bands=names or
                          [f"band{i + 1}" for i in range(in_channels)],
                          weights_bands=weights_bands, hub=hub)
    return model, report


def build_model(task: str, name: str, *, in_channels: int | None = None, num_classes: int,
                params: dict[str, Any] | None = None,
                bands: Sequence[Any] | None = None) -> nn.Module:
    """Build architecture ``name`` for ``task``, fitted to the bands and classes.

    Args:
        task: classification, segmentation or detection.
        name: a name from :func:`architectures` (classification: or ``timm:NAME``).
        in_channels: band count of the input (may be left out when ``bands`` is given).
        num_classes: class count, background (class 0) included.
        params: constructor parameters of the architecture, plus ``weights`` (a local file
            or a hub name) and ``weights_bands`` (see :mod:`geovision.models.weights`).
        bands: the input's band names, or the dataset's ``[{index, name, dtype}]``; the
            pretrained stem is mapped to them by name (:mod:`geovision.models.bands`).
            Without them bands are unnamed and match the weights' by position only.

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        InputError: unknown task or name (the message lists the valid names), or parameters
            the architecture does not accept.
        InputFileError: a weights file does not exist.
        ModelFileError: a weights file cannot be read safely or does not fit.
    """
    return build_model_with_weights(task, name, in_channels=in_channels,
                                    num_classes=num_classes, params=params, bands=bands)[0]
