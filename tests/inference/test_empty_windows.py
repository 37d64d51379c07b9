"""Windows without a valid pixel are not run through the model, and change no output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geovision.inference import infer
from geovision.inference.tasks.detection import Detection
from geovision.inference.tasks.segmentation import Segmentation
from tests.inference.gdal_cog import cog_levels
from tests.inference.infer_helpers import write_scene


def footprint_scene(path: Path, size: tuple[int, int] = (700, 600)) -> Path:
    """A scene whose data lie in a tilted band, nodata (0) around it, as a Landsat scene's
    rotated footprint; bright squares inside and outside the band (the detector's objects)."""
    h, w = size
    rng = np.random.default_rng(7)
    pixels = rng.integers(1, 180, (4, h, w), dtype=np.uint8)
    rows, cols = np.mgrid[:h, :w]
    inside = np.abs((rows - h / 2) - 0.6 * (cols - w / 2)) < h / 5
    for r, c in [(330, 290), (300, 330), (40, 40), (650, 560)]:  # two in, two out
        pixels[:, r:r + 12, c:c + 12] = 250
    pixels[:, ~inside] = 0
    return write_scene(path, pixels, nodata=0)


class Counted:
    """Counts the windows the model is asked for."""

    def __init__(self, task: type, monkeypatch: pytest.MonkeyPatch) -> None:
        self.windows = 0
        predict = task.predict

        def counting(obj, model, x, tta=False):  # type: ignore[no-untyped-def]
            self.windows += len(x)
            return predict(obj, model, x, tta)

        monkeypatch.setattr(task, "predict", counting)


def run_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: type, bundle: Path,
             scene: Path, **kwargs: object) -> tuple[Path, Path, int, int]:
    """The scene with empty windows skipped and with every window run."""
    skipped = Counted(task, monkeypatch)
    infer(bundle, scene, tmp_path / "skip", quiet=True, **kwargs)
    n_skip = skipped.windows
    monkeypatch.setattr(task, "skips_empty", False)
    every = Counted(task, monkeypatch)
    infer(bundle, scene, tmp_path / "all", quiet=True, **kwargs)
    return tmp_path / "skip", tmp_path / "all", n_skip, every.windows


def test_segmentation_skips_empty_windows_with_the_same_outputs(tmp_path, seg_bundle,
                                                                monkeypatch):
    scene = footprint_scene(tmp_path / "scene.tif")
    skip, every, n_skip, n_all = run_both(tmp_path, monkeypatch, Segmentation, seg_bundle,
                                          scene, window=64, overlap=0.25, block_windows=3)
    assert n_all == json.loads((every / "scene.json").read_text())["windows"]
    assert 0 < n_skip < 0.7 * n_all  # most of the scene is nodata
    for name in ("scene.class.tif", "scene.prob.tif"):
        for a, b in zip(cog_levels(skip / name), cog_levels(every / name), strict=True):
            assert a.tobytes() == b.tobytes()
    with rasterio.open(skip / "scene.class.tif") as ds:
        classes = ds.read(1)
    with rasterio.open(scene) as ds:
        assert ((classes == 255) == (ds.dataset_mask() == 0)).all()


def test_detection_skips_empty_windows_with_the_same_boxes(tmp_path, bright_detector,
                                                           monkeypatch):
    scene = footprint_scene(tmp_path / "scene.tif")
    skip, every, n_skip, n_all = run_both(tmp_path, monkeypatch, Detection, bright_detector,
                                          scene)
    assert 0 < n_skip < n_all
    a, b = ((d / "scene.detections.geojson").read_text() for d in (skip, every))
    assert a == b and json.loads(a)["features"]  # the squares in the band are found
