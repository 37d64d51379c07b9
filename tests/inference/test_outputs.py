"""The output folder of infer: when a scene is complete, and its summary as a value."""

import json

import numpy as np
import rasterio
from affine import Affine

from geovision.inference.outputs import PredictionFolder, SceneSummary


def test_a_scene_is_complete_with_its_summary_and_without_scratch(tmp_path):
    scene = tmp_path / "scene.tif"  # a scene is resolved (opened) to find its name
    with rasterio.open(scene, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 0)) as dst:
        dst.write(np.zeros((1, 4, 4), np.uint8))
    folder = PredictionFolder(tmp_path / "out")
    assert not folder.is_complete([str(scene)])
    folder.root.mkdir()
    folder.summary("scene").write_text("{}")
    folder.scratch("scene").mkdir()
    assert not folder.is_complete([str(scene)])  # a run is in progress
    folder.scratch("scene").rmdir()
    assert folder.is_complete([str(scene)])
    assert not folder.is_complete([str(tmp_path / "none-*.tif")])  # matches nothing


def test_summary_round_trips_through_its_file():
    summary = SceneSummary(
        created="2024-01-01T00:00:00+00:00", geovision_version="0.1.0",
        model={"task": "segmentation"}, scene={"path": "/data/a.tif"},
        parameters={"window": 64}, windows=4, blocks=1, outputs=("a.class.tif",),
        counts={}, timings={"total": 1.0}, megapixels=0.1, megapixels_per_s=0.1)
    doc = json.loads(json.dumps(summary.to_json()))
    assert doc["geovision"]["format"] == "inference" and list(doc)[-1] == "megapixels_per_s"
    assert SceneSummary.from_json(doc) == summary and summary.stem == "a"


def test_the_report_line_gives_the_models_share_of_the_time(tmp_path):
    summary = SceneSummary(
        created="2024-01-01T00:00:00+00:00", geovision_version="0.1.0",
        model={"task": "segmentation"}, scene={"path": "/data/a.tif", "name": "a"},
        parameters={}, windows=121, blocks=4, outputs=("a.class.tif",), counts={},
        timings={"model": 13.0, "total": 15.0, "model_share": 0.867}, megapixels=16.8,
        megapixels_per_s=1.12)
    assert summary.report_line(tmp_path) == (
        "/data/a.tif: 121 windows, 1.12 MP/s (87% of the time in the model) -> "
        f"{tmp_path / 'a.class.tif'}, {tmp_path / 'a.json'}")
