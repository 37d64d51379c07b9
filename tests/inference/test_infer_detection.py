"""Detection: boxes mapped to the scene, merged across window seams, written as GeoJSON."""

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
from geovision.inference.detections import MergeRule, merge, pair_overlap, to_scene

BACKGROUND, BRIGHT = 100, 240


def scene_with(boxes, shape=(300, 300)):
    """A 4-band scene of background with bright rectangles (row0, col0, row1, col1)."""
    pixels = np.full((4, *shape), BACKGROUND, dtype=np.uint8)
    for r0, c0, r1, c1 in boxes:
        pixels[:, r0:r1, c0:c1] = BRIGHT
    return pixels


def test_boxes_move_to_scene_pixels_and_cut_boxes_are_flagged():
    boxes = np.array([[10, 10, 20, 20], [100, 5, 128, 30], [0, 0, 5, 5]], dtype=np.float32)
    table = to_scene(boxes, np.array([0.9, 0.8, 0.7]), np.array([1, 1, 2]), (96, 96), 128,
                     1000, 1000)
    np.testing.assert_allclose(table[0, :4], [106, 106, 116, 116])
    assert list(table[:, 6]) == [0, 1, 1]  # right edge inside the scene; left/top edge too


def test_boxes_at_the_scene_edge_are_whole_and_padding_boxes_are_dropped():
    boxes = np.array([[0, 0, 10, 10], [120, 120, 128, 128]], dtype=np.float32)
    table = to_scene(boxes, np.array([0.9, 0.9]), np.array([1, 1]), (0, 0), 128, 100, 100)
    assert len(table) == 1 and table[0, 6] == 0  # the second lies in padding past the scene


def test_merge_keeps_the_whole_box_over_cut_ones_and_separates_classes():
    rule = MergeRule(iou=0.5, ios=0.5)
    whole = [110, 100, 150, 140, 0.6, 1, 0]
    cut_left = [110, 100, 128, 140, 0.95, 1, 1]
    cut_top = [110, 100, 150, 128, 0.9, 1, 1]
    other_class = [110, 100, 150, 140, 0.7, 2, 0]
    merged = merge(np.array([cut_left, whole, cut_top, other_class], dtype=float), rule)
    assert len(merged) == 2
    np.testing.assert_allclose(merged[merged[:, 5] == 1][0, :5], whole[:5])


def test_merge_joins_parts_of_an_object_no_window_saw_whole():
    # an object over x 0..150 seen by windows [0, 128) and [96, 224), cut by both
    a = [0, 0, 128, 50, 0.9, 1, 1]
    b = [96, 0, 150, 50, 0.8, 1, 1]
    merged = merge(np.array([a, b], dtype=float), MergeRule())
    np.testing.assert_allclose(merged[0, :5], [0, 0, 150, 50, 0.9])


def test_nms_keeps_distinct_objects():
    boxes = np.array([[0, 0, 10, 10, 0.9, 1, 0], [20, 0, 30, 10, 0.8, 1, 0],
                      [1, 0, 11, 10, 0.7, 1, 0]], dtype=float)
    assert len(merge(boxes, MergeRule(iou=0.5))) == 2
    assert pair_overlap(boxes[0], boxes[1]) == (0.0, 0.0)


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
