"""A segmentation model with a known, structured answer, for the ``--vectors`` tests.

:class:`BandBins` gives each pixel the class whose centre is nearest to its (3x3 averaged)
normalized band mean: the classes follow the scene's shapes, so a synthetic sample yields
hundreds of regions of every class, many crossing window and block seams, and soft
probabilities (not 0 or 1) for ``mean_prob``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from geovision.models import registry
from tests.inference.infer_helpers import write_bundle

NAME = "band_bins"


class BandBins(nn.Module):
    """Logits ``-4 (m - c_k)²`` of the 3x3 mean ``m`` of the band mean and centres ``c_k``."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        centres = torch.linspace(-1.0, 1.8, num_classes)
        self.centres = nn.Parameter(centres.view(1, -1, 1, 1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = nn.functional.avg_pool2d(x.mean(1, keepdim=True), 3, 1, 1,
                                     count_include_pad=False)
        return -4.0 * (m - self.centres) ** 2


def register_band_bins() -> None:
    """Add :class:`BandBins` to this process's model registry (idempotent)."""

    def build(*, in_channels: int, num_classes: int, params: dict) -> nn.Module:
        return BandBins(num_classes)

    registry._REGISTRY["segmentation"][NAME] = build


def band_bins_bundle(path: Path, *, tile_size: int = 32) -> Path:
    """A bundle of :class:`BandBins` (registered here first)."""
    register_band_bins()
    return write_bundle(path, "segmentation", NAME, tile_size=tile_size)
