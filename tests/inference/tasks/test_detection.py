"""Detection inference: one box per object across window seams, written as GeoJSON."""

from __future__ import annotations

import itertools
import json

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from affine import Affine
from pyproj import Transformer

from geovision.inference import infer
from geovision.models import registry
from tests.inference.infer_helpers import BrightBoxes, write_bundle

BACKGROUND, BRIGHT = 100, 240


def scene_with(boxes, shape=(300, 300)):
    """A 4-band scene of background with bright rectangles (row0, col0, row1, col1)."""
    pixels = np.full((4, *shape), BACKGROUND, dtype=np.uint8)
    for r0, c0, r1, c1 in boxes:
        pixels[:, r0:r1, c0:c1] = BRIGHT
    return pixels


@pytest.mark.parametrize("crs", ["wgs84", "native"])
def test_object_under_a_window_seam_gives_one_box_in_the_right_place(tmp_path, bright_detector,
                                                                      scene_writer, crs):
    # window 128, stride 96: the object spans the seams of four windows, one sees it whole
    transform = Affine(10.0, 0, 500_000.0, 0, -10.0, 5_300_000.0)
    scene = scene_writer("scene.tif", scene_with([(100, 110, 140, 150)]), transform=transform)
    [summary] = infer(bright_detector, scene, tmp_path / "out", crs=crs, quiet=True)
    assert summary.counts["detections"] == 1
    path = tmp_path / "out" / "scene.detections.geojson"
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 1
    props = doc["features"][0]["properties"]
    assert props == {"class": "building", "class_id": 1, "score": 0.9}
    frame = gpd.read_file(path, engine="pyogrio")
    assert len(frame) == 1 and frame.geometry.iloc[0].is_valid
    x0, y1 = transform * (110, 100)
    x1, y0 = transform * (150, 140)
    if crs == "wgs84":
        assert "crs" not in doc and frame.crs.to_epsg() == 4326
        tr = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
        xs, ys = tr.transform([x0, x1, x0, x1], [y0, y0, y1, y1])
        expected = (min(xs), min(ys), max(xs), max(ys))
        np.testing.assert_allclose(frame.total_bounds, expected, atol=2e-6)
        ring = doc["features"][0]["geometry"]["coordinates"][0]
        area2 = sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise(ring))
        assert area2 > 0  # counter-clockwise exterior (RFC 7946)
    else:
        assert frame.crs.to_epsg() == 32633
        np.testing.assert_allclose(frame.total_bounds, (x0, y0, x1, y1), atol=1e-3)


def test_several_objects_and_an_empty_scene(tmp_path, bright_detector, scene_writer):
    scene = scene_writer("two.tif", scene_with([(10, 10, 30, 40)], shape=(128, 128)))
    [summary] = infer(bright_detector, scene, tmp_path / "out", quiet=True)
    assert summary.counts["detections"] == 1
    empty = scene_writer("empty.tif", scene_with([], shape=(200, 150)))
    [summary] = infer(bright_detector, empty, tmp_path / "out", quiet=True)
    assert summary.counts["detections"] == 0
    doc = json.loads((tmp_path / "out" / "empty.detections.geojson").read_text())
    assert doc == {"type": "FeatureCollection", "features": []}
    assert pyogrio.read_info(tmp_path / "out" / "empty.detections.geojson")["features"] == 0


def test_detections_on_nodata_are_dropped(tmp_path, bright_detector, scene_writer):
    pixels = scene_with([(20, 20, 40, 40)], shape=(128, 128))
    pixels[:, :64, :64] = 0
    pixels[:, 20:40, 20:40] = BRIGHT  # bright, but inside the nodata quadrant's mask below
    scene = scene_writer("nd.tif", pixels, nodata=0)
    import rasterio

    with rasterio.open(scene, "r+") as ds:
        ds.nodata = BRIGHT  # the bright box is nodata now
    [summary] = infer(bright_detector, scene, tmp_path / "out", quiet=True)
    assert summary.counts["detections"] == 0


def test_tta_is_refused_for_detection(tmp_path, bright_detector, scene_writer):
    scene = scene_writer("s.tif", scene_with([], shape=(64, 64)))
    with pytest.raises(ValueError, match="--tta"):
        infer(bright_detector, scene, tmp_path / "out", tta=True, quiet=True)


def test_gap_class_ids_come_back_as_the_users_ids(tmp_path, scene_writer):
    # a store tiled with --class-map keeps codes: model index 1 is class id 7
    registry._REGISTRY["detection"]["bright_gap"] = (
        lambda *, in_channels, num_classes, params: BrightBoxes(num_classes))
    try:
        model = write_bundle(tmp_path / "gap.pt", "detection", "bright_gap", tile_size=128,
                             classes=[{"id": 0, "name": "background"},
                                      {"id": 7, "name": "building"},
                                      {"id": 9, "name": "crop"}])
        scene = scene_writer("scene.tif", scene_with([(10, 10, 30, 40)], shape=(128, 128)))
        infer(model, scene, tmp_path / "out", quiet=True)
    finally:
        registry._REGISTRY["detection"].pop("bright_gap", None)
    doc = json.loads((tmp_path / "out" / "scene.detections.geojson").read_text())
    assert [f["properties"] for f in doc["features"]] == [
        {"class": "building", "class_id": 7, "score": 0.9}]
