"""The default window of infer: large for fully convolutional models, logged and recorded."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from geovision.inference import infer
from geovision.inference.window import activation_bytes, choose_window
from geovision.models.bundle import load_bundle
from geovision.options.infer import InferOptions
from tests.inference.infer_helpers import write_bundle, write_scene

MB = 2**20


def _memory(w: int, per_pixel: float, opts: InferOptions, classes: int = 5) -> float:
    """What a window costs: a batch through the model, a block's float32 sums per class."""
    stride = w - round(w * opts.overlap)
    side = w + (opts.block_windows - 1) * stride
    return opts.batch_size * w * w * per_pixel + side * side * (classes + 1) * 4


def test_the_largest_multiple_of_the_tile_within_the_budget(seg_bundle: Path) -> None:
    bundle = load_bundle(seg_bundle)
    opts = InferOptions(window_memory=256)
    choice = choose_window(bundle, opts, 10_000, 10_000, "cpu", per_pixel=256.0)
    w = choice.window
    assert w % 64 == 0 and w >= 256
    assert _memory(w, 256.0, opts) <= 256 * MB < _memory(w + 64, 256.0, opts)
    assert f"is {w} px" in choice.reason and "--window-memory 256 MB" in choice.reason
    bigger = choose_window(bundle, InferOptions(window_memory=1024), 10_000, 10_000, "cpu",
                           per_pixel=256.0)
    assert bigger.window > w


def test_at_least_256_px_at_most_the_scene(seg_bundle: Path) -> None:
    bundle = load_bundle(seg_bundle)
    tiny = choose_window(bundle, InferOptions(window_memory=16), 5000, 5000, "cpu",
                         per_pixel=1e6)
    assert tiny.window == 256 and "raised to the 256 px minimum" in tiny.reason
    small = choose_window(bundle, InferOptions(), 100, 150, "cpu", per_pixel=64.0)
    assert small.window == 192  # 150 rounded up to the 64 px tile
    assert "the scene needs no more than 192 px" in small.reason
    given = choose_window(bundle, InferOptions(window=96), 5000, 5000, "cpu")
    assert (given.window, given.reason) == (96, "--window")


def test_other_tasks_keep_their_tile_size(tmp_path: Path) -> None:
    bundle = load_bundle(write_bundle(tmp_path / "c.pt", "classification", "mobilenet_v3_small"))
    choice = choose_window(bundle, InferOptions(), 5000, 5000, "cpu")
    assert choice.window == 64 and "tile size" in choice.reason


def test_activation_bytes_grow_with_the_model(tmp_path: Path) -> None:
    small = load_bundle(write_bundle(tmp_path / "s.pt", "segmentation", "unet",
                                     params={"base_channels": 4, "depth": 2}))
    large = load_bundle(write_bundle(tmp_path / "l.pt", "segmentation", "unet",
                                     params={"base_channels": 16, "depth": 2}))
    assert activation_bytes(large, "cpu") > 3 * activation_bytes(small, "cpu")


def test_infer_logs_and_records_the_window(tmp_path: Path, seg_bundle: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    scene = write_scene(tmp_path / "scene.tif",
                        rng.integers(0, 255, (4, 400, 600), dtype=np.uint8))
    with caplog.at_level(logging.INFO, logger="geovision"):
        [summary] = infer(seg_bundle, scene, tmp_path / "out", quiet=True)
    assert summary.windows == 1
    doc = json.loads((tmp_path / "out" / "scene.json").read_text())
    assert doc["parameters"]["window"] == 640
    assert "the scene needs no more than 640 px" in doc["parameters"]["window_reason"]
    assert doc["parameters"]["window_memory"] == 1024
    assert any("scene: window 640 px (fully convolutional model" in r.getMessage()
               for r in caplog.records)
