"""Fit torchvision models to any band count and load optional local pretrained weights."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geovision.errors import InputError, InputFileError, ModelFileError

log = logging.getLogger(__name__)


def first_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """The first convolution of a model (its stem), with its parent and attribute name.

    Raises:
        InputError: the model has no 2-D convolution.
    """
    for _name, parent in model.named_modules():
        for attr, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                return parent, attr, child
    raise InputError(f"{type(model).__name__}: no Conv2d to adapt to the band count")


def adapt_conv_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a ``(out, c, kh, kw)`` kernel trained on ``c`` bands to ``in_channels`` bands.

    The kernel is averaged over its input bands and repeated for each new band, scaled by
    ``c / in_channels`` so that the response to an image whose bands all look alike keeps
    its magnitude. With ``in_channels == c`` the kernel is returned unchanged.
    """
    c = weight.shape[1]
    if c == in_channels:
        return weight
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, in_channels, 1, 1) * (c / in_channels)


def set_in_channels(model: nn.Module, in_channels: int) -> nn.Module:
    """Replace the stem convolution so that the model takes ``in_channels`` bands."""
    parent, attr, conv = first_conv(model)
    if conv.in_channels == in_channels:
        return model
    new = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride, padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=1 if conv.groups == conv.in_channels else conv.groups,
        bias=conv.bias is not None, padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(adapt_conv_weight(conv.weight, in_channels))
        if conv.bias is not None and new.bias is not None:
            new.bias.copy_(conv.bias)
    setattr(parent, attr, new)
    return model


def _state_dict_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            inner = obj.get(key)
            if isinstance(inner, dict):
                return _state_dict_of(inner, path)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise ModelFileError(f"{path}: holds no state dict of tensors")


def load_pretrained(model: nn.Module, weights: str | os.PathLike[str]) -> dict[str, int]:
    """Load a local weights file into ``model`` as far as names and shapes allow.

    The file is read with ``torch.load(weights_only=True)``: a plain state dict, or a dict
    holding one under ``state_dict``/``model``, or a geovision bundle. Stem kernels whose band
    count differs are adapted with :func:`adapt_conv_weight`; tensors whose shapes still
    differ (e.g. a classifier head for another class count) are skipped. When the names do
    not match directly, the file is tried as backbone weights (``backbone.body.`` prefix) and
    under the prefix of a wrapped model (``model.``).

    Returns:
        Counts of ``loaded``, ``adapted`` and ``skipped`` tensors.

    Raises:
        InputFileError: the file does not exist.
        ModelFileError: it cannot be read safely, or nothing in it fits the model.
    """
    path = Path(weights)
    if not path.is_file():
        raise InputFileError(f"{path}: pretrained weights file not found (model.params.weights)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(
            f"{path}: cannot be read as plain tensors ({type(exc).__name__}); "
            "give a state dict saved with torch.save(model.state_dict())") from exc
    source = _state_dict_of(obj, path)
    target = model.state_dict()
    best: dict[str, torch.Tensor] = {}
    for prefix in ("", "backbone.body.", "model.", "model.backbone.", "backbone."):
        renamed = {prefix + k: v for k, v in source.items() if prefix + k in target}
        if len(renamed) > len(best):
            best = renamed
    counts = {"loaded": 0, "adapted": 0, "skipped": 0}
    state: dict[str, torch.Tensor] = {}
    for key, value in best.items():
        want = target[key]
        if value.shape == want.shape:
            state[key] = value.to(want.dtype)
            counts["loaded"] += 1
        elif (value.ndim == 4 and want.ndim == 4 and value.shape[0] == want.shape[0]
              and value.shape[2:] == want.shape[2:]):
            state[key] = adapt_conv_weight(value, want.shape[1]).to(want.dtype)
            counts["adapted"] += 1
        else:
            counts["skipped"] += 1
    if not state:
        raise ModelFileError(
            f"{path}: no tensor matches the model by name and shape; is it for this "
            "architecture?")
    model.load_state_dict(state, strict=False)
    counts["skipped"] += len(source) - len(best)
    log.info("%s: loaded %d tensors, adapted %d to the band count, skipped %d", path,
             counts["loaded"], counts["adapted"], counts["skipped"])
    return counts
