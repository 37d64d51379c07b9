"""Helpers of the inference tests: model bundles from the registry, small scenes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from affine import Affine
from torch import nn

from geovision.models import registry
from geovision.models.bundle import save_bundle

CLASSES = [
    {"id": 0, "name": "background", "color": "#000000"},
    {"id": 1, "name": "building", "color": "#e31a1c"},
    {"id": 2, "name": "crop", "color": "#ffff33"},
    {"id": 3, "name": "forest", "color": "#33a02c"},
    {"id": 4, "name": "water", "color": "#1f78b4"},
]
TINY_UNET = {"base_channels": 4, "depth": 2}


#: Band names of generated samples (geovision.synthetic), which the test bundles read.
SAMPLE_BANDS = ("blue", "green", "red", "nir")


def bands(n: int = 4, dtype: str = "uint8") -> list[dict[str, Any]]:
    names = [*SAMPLE_BANDS, *(f"band{i}" for i in range(5, n + 1))]
    return [{"index": i + 1, "name": names[i], "dtype": dtype} for i in range(n)]


def write_bundle(path: Path, task: str, name: str, *, params: dict[str, Any] | None = None,
                 tile_size: int = 64, n_bands: int = 4, seed: int = 0,
                 resolution: list[float] | None = None,
                 classes: list[dict[str, Any]] | None = None) -> Path:
    """A bundle from the registry with fixed random weights (classes: :data:`CLASSES`)."""
    classes = classes or CLASSES
    torch.manual_seed(seed)
    params = params or {}
    model = registry.build_model(task, name, in_channels=n_bands, num_classes=len(classes),
                                 params=params)
    return save_bundle(path, model=model, task=task, classes=classes, ignore_index=255,
                       bands=bands(n_bands), architecture={"name": name, "params": params},
                       normalization={"mean": [110.0] * n_bands, "std": [50.0] * n_bands},
                       tile_size=tile_size, resolution=resolution or [10.0, 10.0],
                       train={"epochs": 0})


class BrightBoxes(nn.Module):
    """A detector with a known answer: one box around the window's bright pixels (score 0.9).

    Inputs are normalized with mean 110, std 50: bright (> 200) pixels are above 1.8.
    """

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.threshold = nn.Parameter(torch.tensor(1.8), requires_grad=False)

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in images:
            bright = image.mean(0) > self.threshold
            rows = torch.nonzero(bright.any(1)).flatten()
            cols = torch.nonzero(bright.any(0)).flatten()
            if len(rows) == 0:
                boxes = torch.zeros((0, 4))
            else:
                boxes = torch.tensor([[cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]],
                                     dtype=torch.float32)
            n = len(boxes)
            out.append({"boxes": boxes, "scores": torch.full((n,), 0.9),
                        "labels": torch.ones(n, dtype=torch.int64)})
        return out


def write_scene(path: Path, pixels: np.ndarray, *, crs: str = "EPSG:32633",
                transform: Affine | None = None, nodata: float | None = None) -> Path:
    """A GeoTIFF of ``(bands, rows, cols)`` pixels."""
    count, height, width = pixels.shape
    transform = transform or Affine(10.0, 0, 500_000.0, 0, -10.0, 5_300_000.0)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count,
                       dtype=pixels.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(pixels)
    return path
