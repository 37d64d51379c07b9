"""The stem convolution: find it, fit it to a band count, map pretrained kernels to bands.

The rule of :func:`adapt_stem` (band-aware adaptation of pretrained first-layer kernels):
for weights trained on ``c`` bands and an input of ``n`` bands,

    W'[:, j] = (c / n) * W[:, s(j)]         if input band j is the weights' band s(j)
    W'[:, j] = (c / n) * mean_k W[:, k]     if the weights do not have band j

where bands are matched by name (:func:`geovision.models.bands.match_bands`). The factor
``c / n`` is the one timm's ``adapt_input_conv`` and smp's ``patch_first_conv`` apply when
they repeat kernels over more (or fewer) channels: for an input whose bands all look alike
(the same normalised value ``x`` in every band) the stem's response goes from
``x * sum_k W[:, k]`` to ``x * sum_j W'[:, j]``, and with every weights band matched once
plus ``m`` bands on the mean kernel (``n = c + m``) the factor makes the two exactly equal,
so activations keep their magnitude and the pretrained layers after the stem see the range
they were trained on. With ``n == c`` and every band matched to itself the kernel is
returned unchanged. The stem's bias, if any, is kept.
"""

from __future__ import annotations

import torch
from torch import nn

from geovision.errors import InputError
from geovision.models.bands import BandMatch


def find_stem(model: nn.Module, in_channels: int | None = None) -> tuple[str, nn.Conv2d]:
    """The stem: the first 2-D convolution (that takes ``in_channels``, when given).

    Returns:
        The convolution's dotted name in ``model`` (its weight is ``<name>.weight`` in the
        state dict) and the convolution.

    Raises:
        InputError: the model has no such convolution.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and (in_channels is None
                                              or module.in_channels == in_channels):
            return name, module
    raise InputError(f"{type(model).__name__}: no Conv2d to adapt to the band count")


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def set_in_channels(model: nn.Module, in_channels: int) -> nn.Module:
    """Replace the stem convolution by a freshly initialised one taking ``in_channels`` bands.

    The new convolution keeps every other setting (kernel, stride, padding, bias) and
    PyTorch's default initialisation; pretrained kernels are mapped to bands later, when
    weights are loaded (:func:`adapt_stem`).

    Returns:
        The model (changed in place).
    """
    name, conv = find_stem(model)
    if conv.in_channels == in_channels:
        return model
    new = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride, padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=1 if conv.groups == conv.in_channels else conv.groups,
        bias=conv.bias is not None, padding_mode=conv.padding_mode,
    )
    parent, attr = _parent(model, name)
    setattr(parent, attr, new)
    return model


def stem_scale(source_bands: int, target_bands: int) -> float:
    """The factor ``c / n`` of :func:`adapt_stem` (weights' bands over input bands)."""
    return source_bands / target_bands


def adapt_stem(weight: torch.Tensor, match: BandMatch) -> torch.Tensor:
    """Map a pretrained stem kernel ``(out, c, kh, kw)`` to the bands of ``match.target``.

    See the module docstring for the rule: matched bands copy their kernel, the others get
    the mean kernel, and the whole kernel is scaled by :func:`stem_scale`.

    Args:
        weight: the pretrained kernel; ``c`` must equal ``len(match.source)``.
        match: the band mapping from :func:`geovision.models.bands.match_bands`.

    Returns:
        The kernel ``(out, n, kh, kw)``, in the dtype of ``weight``.

    Raises:
        InputError: the kernel's band count differs from the match's source bands.
    """
    c, n = weight.shape[1], len(match.target)
    if c != len(match.source):
        raise InputError(f"stem kernel has {c} input bands, the weights' band list "
                         f"{len(match.source)} ({', '.join(match.source)}); set "
                         "model.params.weights_bands to the weights' bands, in order")
    if n == c and list(match.index) == list(range(c)):
        return weight.clone()
    mean = weight.mean(dim=1)
    cols = [weight[:, i] if i is not None else mean for i in match.index]
    return (torch.stack(cols, dim=1) * stem_scale(c, n)).to(weight.dtype)
