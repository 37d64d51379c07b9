"""torchvision detectors for tiles: any band count, no resizing, input already normalized."""

from __future__ import annotations

import difflib
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
from torchvision.models.detection.fcos import FCOSHead, FCOSRegressionHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.feature_pyramid_network import (
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

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


#: Codes of the box-distance activation stored in :class:`FCOSBoxHead`'s ``box_activation``.
BOX_ACTIVATIONS = {"relu": 0, "softplus": 1}


class FCOSBoxHead(FCOSRegressionHead):
    """FCOS regression head whose box distances never stop learning.

    torchvision's head predicts the four distances (left, top, right, bottom, in units of
    the level's anchor size) as ``relu(x)``. Its last convolution starts at zero, right on
    the kink, and Adam moves it by about the learning rate per step whatever the gradient's
    size: one step can turn every pre-activation negative, after which ReLU passes no
    gradient and every box keeps zero width and height for good (centres and scores still
    learn). Here the distances are ``softplus(x) = log(1 + exp(x))``: positive, smooth, with a
    gradient ``sigmoid(x) > 0`` everywhere, so the head always recovers; at the initial
    ``x = 0`` a box is ``2 log 2 = 1.39`` anchor sizes wide (11 px on the finest level of
    ``fcos_tiny``), the size of the small objects tiles hold.

    The activation is stored as the buffer ``box_activation`` (a code of
    :data:`BOX_ACTIVATIONS`) so that a state dict saved before the buffer existed loads as
    ``relu``, the activation its weights were trained with.
    """

    def __init__(self, in_channels: int, num_anchors: int, num_convs: int = 4,
                 activation: str = "softplus") -> None:
        super().__init__(in_channels, num_anchors, num_convs)
        self.register_buffer("box_activation",
                             torch.tensor(BOX_ACTIVATIONS[activation], dtype=torch.int64))

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        key = prefix + "box_activation"
        if key not in state_dict and any(k.startswith(prefix) for k in state_dict):
            state_dict[key] = torch.tensor(BOX_ACTIVATIONS["relu"], dtype=torch.int64)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Box distances ``(N, HWA, 4)`` and centre-ness logits ``(N, HWA, 1)``."""
        softplus = int(self.box_activation) == 1  # BOX_ACTIVATIONS["softplus"] (scriptable)
        regs, ctrs = [], []
        for features in x:
            feat = self.conv(features)
            raw = self.bbox_reg(feat)
            reg = nn.functional.softplus(raw) if softplus else nn.functional.relu(raw)
            ctr = self.bbox_ctrness(feat)
            n, _, h, w = reg.shape
            regs.append(reg.view(n, -1, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
            ctrs.append(ctr.view(n, -1, 1, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 1))
        return torch.cat(regs, dim=1), torch.cat(ctrs, dim=1)


def _fcos_head(channels: int, num_classes: int, num_convs: int = 4) -> FCOSHead:
    """The FCOS head of torchvision with :class:`FCOSBoxHead` as its regression branch."""
    head = FCOSHead(channels, 1, num_classes, num_convs=num_convs)
    head.regression_head = FCOSBoxHead(channels, 1, num_convs)
    return head


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
    head = _fcos_head(channels, num_classes, int(params.pop("head_convs", 2)))
    anchors = AnchorGenerator(tuple((s,) for s in sizes), ((1.0,),) * 3)
    return FCOS(body, num_classes, anchor_generator=anchors, head=head, min_size=1,
                max_size=1, **params)


#: torchvision ResNets that ``backbone`` accepts (``resnet_fpn_backbone``'s names).
TV_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
              "resnext101_32x8d", "wide_resnet50_2", "wide_resnet101_2")
#: Backbone of ``fcos_fpn``, ``retinanet_fpn`` and ``fasterrcnn_fpn`` when none is given.
DEFAULT_BACKBONE = "resnet50"


class TimmFPN(nn.Module):
    """A timm model's feature maps (``features_only``) under a feature pyramid.

    Attributes:
        body: the timm feature extractor (the pretrained part).
        fpn: torchvision's FeaturePyramidNetwork over the maps of the chosen strides.
        out_channels: channels of every pyramid level.
    """

    def __init__(self, name: str, in_channels: int, strides: tuple[int, ...],
                 extra: nn.Module | None, out_channels: int = 256) -> None:
        super().__init__()
        import timm

        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=3)
            raise InputError(f"model.params.backbone: timm has no model '{name}'"
                             + (f" (did you mean {', '.join(close)}?)" if close else ""))
        self.body = timm.create_model(name, pretrained=False, features_only=True,
                                      in_chans=in_channels)
        info: Any = self.body.feature_info
        by_stride = {r: i for i, r in enumerate(info.reduction())}
        if not all(s in by_stride for s in strides):
            raise InputError(f"model.params.backbone: timm:{name} has feature maps at strides "
                             f"{sorted(by_stride)}; this detector needs {list(strides)}")
        self.keep = [by_stride[s] for s in strides]
        self.fpn = FeaturePyramidNetwork([info.channels()[i] for i in self.keep], out_channels,
                                         extra_blocks=extra)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pyramid levels ``{"0": finest, ...}`` plus the extra levels."""
        feats = self.body(x)
        return self.fpn(OrderedDict(
            (str(j), feats[i]) for j, i in enumerate(self.keep)))


def timm_name(backbone: str) -> str | None:
    """The timm model of a ``timm:NAME`` (or ``tu-NAME``) backbone, else None."""
    for prefix in ("timm:", "tu-"):
        if backbone.startswith(prefix):
            return backbone[len(prefix):]
    return None


def _fpn_backbone(backbone: str, in_channels: int, kind: str, trainable: int) -> nn.Module:
    """Backbone + FPN: strides 4-32 and max-pool level (Faster R-CNN), else 8-32 + P6, P7."""
    rcnn = kind == "fasterrcnn"
    extra = None if rcnn else LastLevelP6P7(256, 256)
    name = timm_name(backbone)
    if name is not None:
        strides = (4, 8, 16, 32) if rcnn else (8, 16, 32)
        return TimmFPN(name, in_channels, strides,
                       LastLevelMaxPool() if rcnn else extra)
    if backbone not in TV_RESNETS:
        raise InputError(f"model.params.backbone: '{backbone}' is not a torchvision ResNet "
                         f"({', '.join(TV_RESNETS)}); give timm:NAME for a timm model")
    # Trainable batch norm: torchvision's default (frozen) suits ImageNet weights, but our
    # models mostly start from scratch, where frozen statistics leave the backbone unnormalized.
    return resnet_fpn_backbone(backbone_name=backbone, weights=None, trainable_layers=trainable,
                               returned_layers=[1, 2, 3, 4] if rcnn else [2, 3, 4],
                               extra_blocks=extra, norm_layer=nn.BatchNorm2d)


def backbone_of(name: str, params: dict[str, Any]) -> str | None:
    """The backbone a detector name and params stand for (None: no pretrained backbone)."""
    if name in ("fcos_fpn", "retinanet_fpn", "fasterrcnn_fpn"):
        return str(params.get("backbone", DEFAULT_BACKBONE))
    if name in ("fcos_tiny", "ssdlite320_mobilenet_v3_large"):
        return None
    return name.split("_", 1)[1].removesuffix("_fpn")


def detector_hub(name: str, params: dict[str, Any], tag: str) -> dict[str, torch.Tensor]:
    """Hub weights of a detector's backbone (ImageNet classifiers, mapped by name).

    Raises:
        InputError: the detector has no pretrained backbone (``fcos_tiny``, ``ssdlite``).
    """
    from geovision.models.hub import timm_weights, torchvision_weights

    backbone = backbone_of(name, params)
    if backbone is None:
        raise InputError(f"model.params.weights: {name} has no hub weights; give a local "
                         "weights file, or use fcos_fpn/retinanet_fpn/fasterrcnn_fpn with a "
                         "backbone")
    timm_model = timm_name(backbone)
    if timm_model is not None:
        return timm_weights(timm_model, tag)
    return torchvision_weights(backbone, tag)


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
    """Build detector ``name``: ``<kind>_fpn``, ``<kind>_<resnet>_fpn``, ``fcos_tiny``...

    ``fcos_fpn``, ``retinanet_fpn`` and ``fasterrcnn_fpn`` take ``backbone``: a torchvision
    ResNet (:data:`TV_RESNETS`, default ``resnet50``) or any timm model with feature maps at
    strides 8, 16, 32 (4 too for Faster R-CNN) as ``timm:NAME``; ``fcos_resnet18_fpn`` and
    the like are the same with a fixed ResNet. ``fcos_tiny`` is FCOS on
    :class:`TinyBackbone` (params ``width``, ``fpn_channels``, ``head_convs``): small enough
    to train from scratch on a CPU. FCOS models use :class:`FCOSBoxHead`.

    Params understood here: ``backbone``, ``anchor_sizes`` (one per pyramid level),
    ``aspect_ratios``, ``trainable_layers``; anything else goes to the torchvision model's
    constructor (e.g. ``box_score_thresh``, ``score_thresh``, ``detections_per_img``).

    Returns:
        The model; in eval mode ``model(list_of_images)`` returns one dict per image with
        ``boxes`` (xyxy, input pixels), ``scores`` and ``labels`` (ids >= 1).

    Raises:
        InputError: an unknown backbone or anchor sizes of the wrong count.
    """
    params = dict(params)
    ratios = tuple(float(r) for r in params.pop("aspect_ratios", (0.5, 1.0, 2.0)))
    trainable = int(params.pop("trainable_layers", 5))
    backbone = backbone_of(name, params)
    params.pop("backbone", None)
    kind = name.split("_", 1)[0]
    model: nn.Module
    if name == "fcos_tiny":
        model = _fcos_tiny(in_channels, num_classes, params)
    elif name == "ssdlite320_mobilenet_v3_large":
        model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                              num_classes=num_classes, **params)
    elif kind == "fasterrcnn" and backbone == "mobilenet_v3_large":
        sizes = params.pop("anchor_sizes", (16, 32, 64, 128, 256))
        body = mobilenet_backbone(backbone_name="mobilenet_v3_large", weights=None, fpn=True,
                                  trainable_layers=min(trainable, 6))
        anchors = AnchorGenerator((tuple(int(s) for s in sizes),) * 3, (ratios,) * 3)
        model = FasterRCNN(body, num_classes, rpn_anchor_generator=anchors, min_size=1,
                           max_size=1, rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=150,
                           **params)
    else:
        assert backbone is not None  # every other name has one (backbone_of)
        body = _fpn_backbone(backbone, in_channels, kind, trainable)
        if kind == "fasterrcnn":
            anchors = AnchorGenerator(_anchor_sizes(params, 5, 1), (ratios,) * 5)
            model = FasterRCNN(body, num_classes, rpn_anchor_generator=anchors, min_size=1,
                               max_size=1, **params)
        elif kind == "retinanet":
            anchors = AnchorGenerator(_anchor_sizes(params, 5, 3), (ratios,) * 5)
            model = RetinaNet(body, num_classes, anchor_generator=anchors, min_size=1,
                              max_size=1, **params)
        else:
            anchors = AnchorGenerator(_anchor_sizes(params, 5, 1), ((1.0,),) * 5)
            model = FCOS(body, num_classes, anchor_generator=anchors,
                         head=_fcos_head(256, num_classes), min_size=1, max_size=1, **params)
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
        "ssdlite320_mobilenet_v3_large", "fcos_fpn", "retinanet_fpn", "fasterrcnn_fpn",
    )
}
