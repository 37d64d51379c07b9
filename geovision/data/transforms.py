"""Augmentations that move image, mask and boxes together.

Overhead imagery has no "up": flips and 90-degree rotations are the natural augmentations and
are written here as small pure functions on a :class:`Sample`. Any
``torchvision.transforms.v2`` transform can be added by name; it receives the image as a
``tv_tensors.Image``, the mask as ``tv_tensors.Mask`` and the boxes as
``tv_tensors.BoundingBoxes``, so geometric ones keep all three aligned.

Box coordinates are continuous pixel coordinates (x right, y down, pixel ``(r, c)`` covers
``[c, c + 1] x [r, r + 1]``), so for a tile of width ``W`` and height ``H``:

* horizontal flip: ``x' = W - x``;
* vertical flip: ``y' = H - y``;
* rotation by 90 degrees counter-clockwise (``torch.rot90(k=1)``): ``x' = y``, ``y' = W - x``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from geovision.errors import ConfigError


@dataclass(frozen=True)
class Sample:
    """One tile: image ``(C, H, W)``, optional mask ``(H, W)``, boxes ``(n, 4)`` xyxy."""

    image: torch.Tensor
    mask: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    box_labels: torch.Tensor | None = None


def hflip(s: Sample) -> Sample:
    """Mirror left-right."""
    w = s.image.shape[-1]
    boxes = None
    if s.boxes is not None:
        boxes = torch.stack([w - s.boxes[:, 2], s.boxes[:, 1], w - s.boxes[:, 0], s.boxes[:, 3]],
                            dim=1)
    return dataclasses.replace(s, image=s.image.flip(-1),
                               mask=None if s.mask is None else s.mask.flip(-1), boxes=boxes)


def vflip(s: Sample) -> Sample:
    """Mirror top-bottom."""
    h = s.image.shape[-2]
    boxes = None
    if s.boxes is not None:
        boxes = torch.stack([s.boxes[:, 0], h - s.boxes[:, 3], s.boxes[:, 2], h - s.boxes[:, 1]],
                            dim=1)
    return dataclasses.replace(s, image=s.image.flip(-2),
                               mask=None if s.mask is None else s.mask.flip(-2), boxes=boxes)


def rot90(s: Sample, k: int = 1) -> Sample:
    """Rotate by ``k`` x 90 degrees counter-clockwise (as ``torch.rot90``)."""
    for _ in range(k % 4):
        w = s.image.shape[-1]
        boxes = None
        if s.boxes is not None:
            b = s.boxes
            boxes = torch.stack([b[:, 1], w - b[:, 2], b[:, 3], w - b[:, 0]], dim=1)
        s = dataclasses.replace(
            s, image=torch.rot90(s.image, 1, dims=(-2, -1)),
            mask=None if s.mask is None else torch.rot90(s.mask, 1, dims=(-2, -1)),
            boxes=boxes)
    return s


def orient(array: np.ndarray, hflip: bool, vflip: bool, k: int) -> np.ndarray:
    """A view of ``array`` (``(..., H, W)``) flipped, then rotated as :meth:`Augment.draw` says.

    The same motion as :func:`hflip`, :func:`vflip` and :func:`rot90` applied in that order,
    without a copy: writing the view into a batch is the only copy.
    """
    if hflip:
        array = array[..., ::-1]
    if vflip:
        array = array[..., ::-1, :]
    return np.rot90(array, k % 4, axes=(-2, -1)) if k % 4 else array


def clean_boxes(s: Sample, min_size: float = 1.0) -> Sample:
    """Clip boxes to the tile and drop those thinner than ``min_size`` pixels."""
    if s.boxes is None or s.boxes.numel() == 0:
        return s
    h, w = s.image.shape[-2:]
    b = s.boxes.clone()
    b[:, 0::2] = b[:, 0::2].clamp(0, w)
    b[:, 1::2] = b[:, 1::2].clamp(0, h)
    keep = ((b[:, 2] - b[:, 0]) >= min_size) & ((b[:, 3] - b[:, 1]) >= min_size)
    labels = None if s.box_labels is None else s.box_labels[keep]
    return dataclasses.replace(s, boxes=b[keep], box_labels=labels)


def _v2_transform(spec: dict[str, Any]) -> Any:
    from torchvision.transforms import v2

    name = spec.get("name")
    if not isinstance(name, str) or not hasattr(v2, name):
        valid = sorted(n for n in dir(v2) if n[:1].isupper() and not n.startswith("_"))
        raise ConfigError(f"data.augment.v2: unknown torchvision.transforms.v2 transform "
                          f"'{name}'; e.g. {', '.join(valid[:12])}, ...")
    try:
        return getattr(v2, name)(**dict(spec.get("params") or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"data.augment.v2: {name}: {exc}") from exc


@dataclass(frozen=True)
class Augment:
    """Random flips / rotations plus optional torchvision v2 transforms.

    Attributes:
        hflip: probability of a horizontal flip.
        vflip: probability of a vertical flip.
        rot90: draw a rotation by 0, 90, 180 or 270 degrees uniformly.
        v2: ``[{name, params}]`` torchvision.transforms.v2 transforms, applied after the
            flips to the normalized float image.
    """

    hflip: float = 0.5
    vflip: float = 0.5
    rot90: bool = True
    v2: Sequence[dict[str, Any]] = ()

    def __post_init__(self) -> None:
        """Build the v2 pipeline once, so that config errors surface early."""
        from torchvision.transforms import v2

        pipeline = v2.Compose([_v2_transform(t) for t in self.v2]) if self.v2 else None
        object.__setattr__(self, "_pipeline", pipeline)

    def draw(self, generator: torch.Generator) -> tuple[bool, bool, int]:
        """The flips and quarter turns of one sample: ``(hflip, vflip, k)``."""
        draws = torch.rand(3, generator=generator).tolist()
        return draws[0] < self.hflip, draws[1] < self.vflip, int(draws[2] * 4) if self.rot90 else 0

    def __call__(self, s: Sample, generator: torch.Generator) -> Sample:
        """Augment ``s`` with draws from ``generator`` (deterministic for a given seed)."""
        h, v, k = self.draw(generator)
        if h:
            s = hflip(s)
        if v:
            s = vflip(s)
        if k:
            s = rot90(s, k)
        pipeline = getattr(self, "_pipeline", None)
        if pipeline is not None:
            s = _apply_v2(pipeline, s, int(torch.randint(2**31 - 1, (1,), generator=generator)))
        return clean_boxes(s)


def _apply_v2(pipeline: Any, s: Sample, seed: int) -> Sample:
    from torchvision import tv_tensors

    h, w = s.image.shape[-2:]
    inputs: dict[str, Any] = {"image": tv_tensors.Image(s.image)}
    if s.mask is not None:
        inputs["mask"] = tv_tensors.Mask(s.mask)
    if s.boxes is not None:
        inputs["boxes"] = tv_tensors.BoundingBoxes(s.boxes, format="XYXY", canvas_size=(h, w))
        inputs["labels"] = s.box_labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = pipeline(inputs)
    return Sample(
        image=out["image"].as_subclass(torch.Tensor),
        mask=None if s.mask is None else out["mask"].as_subclass(torch.Tensor),
        boxes=None if s.boxes is None else out["boxes"].as_subclass(torch.Tensor),
        box_labels=out.get("labels"),
    )
