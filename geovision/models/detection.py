"""torchvision detectors for tiles: any band count, no resizing, input already normalized."""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import (
    FCOS,
    FasterRCNN,
    RetinaNet,
    ssdlite320_mobilenet_v3_large,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

from geovision.errors import InputError
from geovision.models.adapt import set_in_channels

#: Default anchor sizes (pixels) per pyramid level: small, since tiles are small.
DEFAULT_ANCHORS = (8, 16, 32, 64, 128)


class TileTransform(GeneralizedRCNNTransform):
    """The detectors' batching transform without their resize and normalization.

    Geovision normalizes with the dataset's per-band mean/std before the model, and a tile
    is seen at its own resolution, so both steps are the identity here; images are only
    padded (bottom/right) to a common size divisible by ``size_divisible``, which leaves box
    coordinates in input pixels.
    """

    def __init__(self, size_divisible: int = 32) -> None:
        super().__init__(min_size=1, max_size=1, image_mean=[0.0], image_std=[1.0],
                         size_divisible=size_divisible)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """Identity: inputs are normalized already."""
        return image

    def resize(self, image: torch.Tensor,
               target: dict[str, torch.Tensor] | None = None,
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """Identity: tiles are seen at their own resolution."""
        return image, target


class TinyBackbone(nn.Module):
    """A small convolutional backbone with an FPN, for detectors trained from scratch on CPU.

    Four stride-2 stages of two 3x3 convolutions (``width`` x 1, 2, 4, 8 channels); the
    last three feed a feature pyramid (strides 4, 8 and 16) of ``out_channels``.
    """

    def __init__(self, in_channels: int, width: int = 32, out_channels: int = 64) -> None:
        super().__init__()

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True))

        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stages = nn.ModuleList(
            [stage(cin, cout) for cin, cout in zip([in_channels, *widths[:-1]], widths,
                                                   strict=True)])
        self.fpn = FeaturePyramidNetwork(widths[1:], out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pyramid features ``{"0": stride 4, "1": stride 8, "2": stride 16}``."""
        feats = OrderedDict()
        for i, st in enumerate(self.stages):
            x = st(x)
            if i >= 1:
                feats[str(i - 1)] = x
        return self.fpn(feats)


def _fcos_tiny(in_channels: int, num_classes: int, params: dict[str, Any]) -> nn.Module:
    width = int(params.pop("width", 32))
    channels = int(params.pop("fpn_channels", 64))
    if channels % 32:
        raise InputError(f"model.params.fpn_channels: {channels} must be a multiple of 32 "
                         "(the FCOS head's group norm)")
    sizes = tuple(int(s) for s in params.pop("anchor_sizes", (8, 16, 32)))
    if len(sizes) != 3:
        raise InputError("model.params.anchor_sizes: fcos_tiny has 3 pyramid levels; give 3 "
                         "sizes")
    body = TinyBackbone(in_channels, width, channels)
    head = FCOSHead(channels, 1, num_classes, num_convs=int(params.pop("head_convs", 2)))
    anchors = AnchorGenerator(tuple((s,) for s in sizes), ((1.0,),) * 3)
    return FCOS(body, num_classes, anchor_generator=anchors, head=head, min_size=1,
                max_size=1, **params)


def _resnet_fpn(backbone: str, returned: list[int], extra: nn.Module | None,
                trainable: int) -> nn.Module:
    # Trainable batch norm: torchvision's default (frozen) suits ImageNet weights, but our
    # models mostly start from scratch, where frozen statistics leave the backbone unnormalized.
    return resnet_fpn_backbone(backbone_name=backbone, weights=None, trainable_layers=trainable,
                               returned_layers=returned, extra_blocks=extra,
                               norm_layer=nn.BatchNorm2d)


def _anchor_sizes(params: dict[str, Any], levels: int,
                  per_octave: int) -> tuple[tuple[int, ...], ...]:
    sizes = tuple(int(s) for s in params.pop("anchor_sizes", DEFAULT_ANCHORS))
    if len(sizes) != levels:
        raise InputError(f"model.params.anchor_sizes: give {levels} sizes (one per pyramid "
                         f"level), got {len(sizes)}")
    if per_octave == 1:
        return tuple((s,) for s in sizes)
    return tuple(tuple(round(s * 2 ** (i / per_octave)) for i in range(per_octave))
                 for s in sizes)


def build_detector(name: str, *, in_channels: int, num_classes: int,
                   params: dict[str, Any]) -> nn.Module:
    """Build detector ``name`` (``<kind>_<backbone>_fpn``, ``fcos_tiny``, ``ssdlite320_...``).

    ``fcos_tiny`` is FCOS on :class:`TinyBackbone` (params ``width``, ``fpn_channels``,
    ``head_convs``): small enough to train from scratch on a CPU.

    Params understood here: ``anchor_sizes`` (one per pyramid level), ``aspect_ratios``,
    ``trainable_layers``; anything else goes to the torchvision model's constructor
    (e.g. ``box_score_thresh``, ``score_thresh``, ``detections_per_img``).

    Returns:
        The model; in eval mode ``model(list_of_images)`` returns one dict per image with
        ``boxes`` (xyxy, input pixels), ``scores`` and ``labels`` (ids >= 1).
    """
    params = dict(params)
    ratios = tuple(float(r) for r in params.pop("aspect_ratios", (0.5, 1.0, 2.0)))
    trainable = int(params.pop("trainable_layers", 5))
    kind = name.split("_", 1)[0]
    backbone_name = name.split("_", 1)[1].removesuffix("_fpn")
    model: nn.Module
    if name == "fcos_tiny":
        model = _fcos_tiny(in_channels, num_classes, params)
    elif name == "ssdlite320_mobilenet_v3_large":
        model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                              num_classes=num_classes, **params)
    elif kind == "fasterrcnn" and backbone_name == "mobilenet_v3_large":
        sizes = params.pop("anchor_sizes", (16, 32, 64, 128, 256))
        body = mobilenet_backbone(backbone_name="mobilenet_v3_large", weights=None, fpn=True,
                                  trainable_layers=min(trainable, 6))
        anchors = AnchorGenerator((tuple(int(s) for s in sizes),) * 3, (ratios,) * 3)
        model = FasterRCNN(body, num_classes, rpn_anchor_generator=anchors, min_size=1,
                           max_size=1, rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=150,
                           **params)
    elif kind == "fasterrcnn":
        body = _resnet_fpn(backbone_name, [1, 2, 3, 4], None, trainable)
        anchors = AnchorGenerator(_anchor_sizes(params, 5, 1), (ratios,) * 5)
        model = FasterRCNN(body, num_classes, rpn_anchor_generator=anchors, min_size=1,
                           max_size=1, **params)
    elif kind == "retinanet":
        body = _resnet_fpn(backbone_name, [2, 3, 4], LastLevelP6P7(256, 256), trainable)
        anchors = AnchorGenerator(_anchor_sizes(params, 5, 3), (ratios,) * 5)
        model = RetinaNet(body, num_classes, anchor_generator=anchors, min_size=1, max_size=1,
                          **params)
    elif kind == "fcos":
        body = _resnet_fpn(backbone_name, [2, 3, 4], LastLevelP6P7(256, 256), trainable)
        anchors = AnchorGenerator(_anchor_sizes(params, 5, 1), ((1.0,),) * 5)
        model = FCOS(body, num_classes, anchor_generator=anchors, min_size=1, max_size=1,
                     **params)
    else:  # pragma: no cover - names are checked by the registry
        raise InputError(f"unknown detector {name}")
    model.transform = TileTransform(32)
    model.register_forward_hook(_drop_background)
    return set_in_channels(model, in_channels)


def _drop_background(module: nn.Module, inputs: Any, output: Any) -> Any:
    """Drop class-0 detections: FCOS and RetinaNet score background like any class."""
    if module.training or not isinstance(output, list):
        return output
    return [{k: v[d["labels"] > 0] for k, v in d.items()} for d in output]


DETECTORS: dict[str, Any] = {
    n: partial(build_detector, n) for n in (
        "fasterrcnn_resnet18_fpn", "fasterrcnn_resnet34_fpn", "fasterrcnn_resnet50_fpn",
        "fasterrcnn_mobilenet_v3_large_fpn",
        "retinanet_resnet18_fpn", "retinanet_resnet34_fpn", "retinanet_resnet50_fpn",
        "fcos_resnet18_fpn", "fcos_resnet34_fpn", "fcos_resnet50_fpn", "fcos_tiny",
        "ssdlite320_mobilenet_v3_large",
    )
}
