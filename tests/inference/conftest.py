"""Fixtures of the inference tests: model bundles built from the registry, small scenes."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see inference/)

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch import nn

from geovision.models import registry
from tests.inference.infer_helpers import TINY_UNET, BrightBoxes, write_bundle, write_scene


@pytest.fixture
def seg_bundle(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "seg.pt", "segmentation", "unet", params=TINY_UNET)


@pytest.fixture
def bright_detector(tmp_path: Path) -> Iterator[Path]:
    """A detection bundle of :class:`BrightBoxes`, registered for the test only."""

    def build(*, in_channels: int, num_classes: int, params: dict[str, Any]) -> nn.Module:
        return BrightBoxes(num_classes)

    registry._REGISTRY["detection"]["bright_boxes"] = build
    try:
        yield write_bundle(tmp_path / "det.pt", "detection", "bright_boxes", tile_size=128)
    finally:
        registry._REGISTRY["detection"].pop("bright_boxes", None)


@pytest.fixture
def scene_writer(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, pixels: np.ndarray, **kwargs: Any) -> Path:
        return write_scene(tmp_path / name, pixels, **kwargs)

    return make
