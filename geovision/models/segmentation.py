"""Encoder-decoder segmenters of segmentation-models-pytorch, for any band count and size.

``unet`` (with ``encoder``), ``unetplusplus``, ``fpn``, ``deeplabv3plus`` and ``upernet``
take ``encoder``: any smp encoder name (``resnet18``, ``resnet50``, ``efficientnet-b0``,
``mit_b0``...) or any timm model as ``tu-NAME`` (``tu-convnext_tiny``,
``tu-efficientnet_b0``...); other params go to the smp constructor (``encoder_depth``,
``decoder_channels``...). The model is built with ``in_channels`` bands and random weights
(smp never downloads here); pretrained weights are mapped onto it band by band by
:func:`geovision.models.weights.load_weights`.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geovision.errors import InputError
from geovision.models.hub import StateDict, smp_encoder_weights

#: Our architecture names -> smp classes.
SMP_ARCHITECTURES = {"unet": "Unet", "unetplusplus": "UnetPlusPlus", "fpn": "FPN",
                     "deeplabv3plus": "DeepLabV3Plus", "upernet": "UPerNet"}
#: Encoder used when ``encoder`` is not given (smp's own default).
DEFAULT_ENCODER = "resnet34"


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` at the bottom and right up to multiples of ``multiple``.

    Reflect padding where the image is larger than the pad, replicate otherwise; the
    caller crops the output back to ``[..., :H, :W]``.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class EncoderDecoder(nn.Module):
    """An smp model that accepts any input size and returns logits at that size.

    Inputs are padded (:func:`pad_to_multiple`) to the encoder's total stride and the
    logits cropped back, so ``(N, bands, H, W)`` gives ``(N, num_classes, H, W)``.

    Attributes:
        model: the smp model (``model.encoder`` is the pretrained part).
        multiple: the stride inputs are padded to.
    """

    def __init__(self, model: nn.Module, multiple: int) -> None:
        super().__init__()
        self.model = model
        self.multiple = multiple

    @property
    def encoder(self) -> nn.Module:
        """The smp encoder."""
        return self.model.encoder  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)`` for normalized ``(N, bands, H, W)`` input."""
        h, w = x.shape[-2:]
        out: torch.Tensor = self.model(pad_to_multiple(x, self.multiple))
        return out[..., :h, :w]


def check_encoder(encoder: str) -> None:
    """Raise unless ``encoder`` is an smp encoder name or ``tu-`` + a timm model name.

    Raises:
        InputError: unknown name, with the closest valid names.
    """
    import segmentation_models_pytorch as smp

    if encoder.startswith("tu-"):
        import timm

        base = encoder[3:].split(".", 1)[0]
        if timm.is_model(base):
            return
        close = difflib.get_close_matches(base, timm.list_models(), n=3)
        raise InputError(f"model.params.encoder: timm has no model '{base}'"
                         + (f" (did you mean {', '.join('tu-' + c for c in close)}?)"
                            if close else ""))
    names = smp.encoders.get_encoder_names()
    if encoder not in names:
        close = difflib.get_close_matches(encoder, names, n=3)
        raise InputError(f"model.params.encoder: unknown encoder '{encoder}'"
                         + (f" (did you mean {', '.join(close)}?)" if close else "")
                         + "; give an smp encoder name (resnet18, resnet50, efficientnet-b0, "
                           "mit_b0, ...) or any timm model as tu-NAME (tu-convnext_tiny)")


def build_smp(arch: str, *, in_channels: int, num_classes: int,
              params: dict[str, Any]) -> nn.Module:
    """Build smp architecture ``arch`` (a key of :data:`SMP_ARCHITECTURES`), random weights.

    Raises:
        InputError: unknown encoder, or parameters smp does not accept.
    """
    import segmentation_models_pytorch as smp

    params = dict(params)
    encoder = str(params.pop("encoder", DEFAULT_ENCODER))
    check_encoder(encoder)
    for key in ("encoder_name", "encoder_weights", "in_channels", "classes"):
        if key in params:
            raise InputError(f"model.params.{key}: set by geovision (use encoder, weights; "
                             "bands and classes come from the dataset)")
    cls = getattr(smp, SMP_ARCHITECTURES[arch])
    try:
        model = cls(encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                    classes=num_classes, **params)
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"model.params: {arch} with encoder {encoder} does not accept "
                         f"{params}: {first}") from None
    depth = int(params.get("encoder_depth", 5))
    return EncoderDecoder(model, 2**depth)


def smp_hub(params: dict[str, Any], tag: str) -> StateDict:
    """Hub weights of the encoder named in ``params`` (see :mod:`geovision.models.hub`)."""
    return smp_encoder_weights(str(params.get("encoder", DEFAULT_ENCODER)), tag)
