"""Shared by the cluster inference tests: a model bundle and scenes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
import torch

from geovision.models.bundle import save_bundle
from geovision.models.registry import build_model
from geovision.synthetic import make_sample

CLASSES = [{"id": i, "name": n, "color": c} for i, (n, c) in enumerate(
    [("background", "#000000"), ("building", "#ff0000"), ("crop", "#ffff00"),
     ("forest", "#00ff00"), ("water", "#0000ff")])]


def unet_bundle(path: Path) -> Path:
    torch.manual_seed(0)
    params = {"base_channels": 4, "depth": 2}
    model = build_model("segmentation", "unet", in_channels=4, num_classes=5, params=params)
    return save_bundle(path, model=model, task="segmentation", classes=CLASSES,
                       ignore_index=255,
                       bands=[{"index": i, "name": f"b{i}", "dtype": "uint8"}
                              for i in (1, 2, 3, 4)],
                       architecture={"name": "unet", "params": params},
                       normalization={"mean": [110.0] * 4, "std": [50.0] * 4}, tile_size=64,
                       resolution=[10.0, 10.0], train={"epochs": 0})


def scenes(folder: Path, sizes: list[int]) -> list[str]:
    out = []
    for i, size in enumerate(sizes):
        sample = make_sample(folder / f"s{i}", size=size, seed=10 + i, stem=f"scene{i}")
        out.extend(sample.rasters)
    return out


def infer(model: Path, scenes: list[str], out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "geovision", "infer", str(model), *scenes, "-o", str(out),
         "--window", "64", "-q", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def assert_same_outputs(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir() if p.suffix == ".tif")
    assert names and names == sorted(p.name for p in b.iterdir() if p.suffix == ".tif")
    for name in names:
        with rasterio.open(a / name) as x, rasterio.open(b / name) as y:
            assert (x.crs, x.transform, x.shape) == (y.crs, y.transform, y.shape)
            np.testing.assert_array_equal(x.read(), y.read(), err_msg=name)
