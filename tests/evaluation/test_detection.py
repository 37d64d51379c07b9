"""Scoring detections in map coordinates against objects, with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.crs import CRS

from geovision.evaluation import ScoreOptions, score
from geovision.evaluation.matching import DetectionMatches, match_boxes
from geovision.geo.raster import open_raster
from geovision.inference.geojson import to_target, write_features

UTM = CRS.from_epsg(32633)
X0, Y0 = 500_000.0, 6_000_000.0     # top-left corner of a 100 x 100 scene of 10 m pixels
# Objects in UTM metres: three buildings and a car in the scene, a building outside it.
OBJECTS = [("building", (X0 + 100, Y0 - 900, X0 + 200, Y0 - 800)),        # A
           ("building", (X0 + 400, Y0 - 600, X0 + 460, Y0 - 520)),        # B
           ("building", (X0 + 700, Y0 - 300, X0 + 760, Y0 - 240)),        # C
           ("car", (X0 + 800, Y0 - 800, X0 + 820, Y0 - 790)),             # D
           ("building", (X0 + 2000, Y0 - 900, X0 + 2050, Y0 - 850))]      # E, outside
# Detections: A found (0.9); B missed by 30 m (IoU 1/3; 0.8); A again (0.7, a duplicate);
# a tree the labels do not know (0.6); the car found (0.5).
DETECTIONS = [("building", 0.9, OBJECTS[0][1]),
              ("building", 0.8, (X0 + 430, Y0 - 600, X0 + 490, Y0 - 520)),
              ("building", 0.7, OBJECTS[0][1]),
              ("tree", 0.6, (X0 + 300, Y0 - 300, X0 + 320, Y0 - 280)),
              ("car", 0.5, OBJECTS[3][1])]
# COCO's 101-point interpolated AP of the buildings: precision 1 up to recall 1/3, then 0,
# so 34 of the 101 recall levels 0, 0.01, ..., 1.
AP_BUILDING = 34 / 101


@pytest.fixture()
def scene(tmp_path: Path) -> dict[str, Path]:
    """A scene raster, its objects (GeoPackage in WGS 84) and detections (RFC 7946 GeoJSON)."""
    raster = tmp_path / "scene.tif"
    with rasterio.open(raster, "w", driver="GTiff", width=100, height=100, count=1,
                       dtype="uint8", crs=UTM,
                       transform=rasterio.Affine(10, 0, X0, 0, -10, Y0)) as dst:
        dst.write(np.zeros((1, 100, 100), np.uint8))
    objects = gpd.GeoDataFrame({"kind": [k for k, _ in OBJECTS]},
                               geometry=[shapely.box(*b) for _, b in OBJECTS], crs=UTM)
    objects.to_crs("EPSG:4326").to_file(tmp_path / "objects.gpkg")
    geoms = to_target(np.array([shapely.box(*b) for _, _, b in DETECTIONS]), UTM, "wgs84")
    ids = {"building": 1, "tree": 2, "car": 3}
    props = [{"class": k, "class_id": ids[k], "score": s} for k, s, _ in DETECTIONS]
    out = tmp_path / "pred"
    out.mkdir()
    write_features(out / "scene.detections.geojson", geoms, props, crs=UTM, target="wgs84")
    return {"raster": raster, "objects": tmp_path / "objects.gpkg",
            "detections": out / "scene.detections.geojson"}


def test_detections_scored_in_map_coordinates(scene: dict[str, Path], tmp_path: Path) -> None:
    result = score(scene["detections"], scene["objects"], tmp_path / "s",
                   ScoreOptions(class_field="kind", scene=str(scene["raster"])))
    doc = result.document
    assert doc["match"]["epsg"] == 32633        # the labels' projected CRS (detections: WGS 84)
    assert (doc["objects"], doc["detections"]) == (4, 5)   # E lies outside the scene
    building, car, tree = (doc["per_class"][n] for n in ("building", "car", "tree"))
    assert {k: building[k] for k in ("objects", "tp", "fp", "fn")} == {
        "objects": 3, "tp": 1, "fp": 2, "fn": 2}
    assert building["precision"] == pytest.approx(1 / 3)
    assert building["recall"] == pytest.approx(1 / 3)
    assert {k: car[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")} == {
        "tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert (tree["objects"], tree["fp"], tree["recall"], tree["ap_50"]) == (0, 1, None, None)
    assert doc["precision"] == pytest.approx(2 / 5) and doc["recall"] == pytest.approx(2 / 4)
    assert doc["f1"] == pytest.approx(2 * 2 / (2 * 2 + 3 + 2))
    assert building["ap_50"] == pytest.approx(AP_BUILDING, abs=1e-6)
    assert building["ap"] == pytest.approx(AP_BUILDING, abs=1e-6)   # A is exact: IoU 1
    assert car["ap_50"] == pytest.approx(1.0) and car["ap"] == pytest.approx(1.0)
    assert doc["map_50"] == pytest.approx((AP_BUILDING + 1) / 2, abs=1e-6)
    assert doc["only_in_predictions"] == ["tree"] and doc["only_in_labels"] == []
    assert doc["match"]["extent"] == {"from": "--scene", "path": str(scene["raster"])}
    files = {p.name for p in (tmp_path / "s").iterdir()}
    assert files == {"score.json", "report.md", "pr_curve.png", "curves.json"}
    curves = json.loads((tmp_path / "s" / "curves.json").read_text())
    assert curves["classes"]["building"]["pr"]["recall"][0] == pytest.approx(1 / 3)
    assert curves["classes"]["building"]["pr"]["thresholds"] == pytest.approx([0.7, 0.8, 0.9])
    assert "mAP@0.5" in result.summary()


def test_the_extent_comes_from_the_summary_beside_the_detections(
        scene: dict[str, Path], tmp_path: Path) -> None:
    info = open_raster(scene["raster"])
    summary = {"geovision": {"format": "inference", "version": 1},
               "model": {"classes": [{"id": 0, "name": "background"},
                                     {"id": 1, "name": "building"}, {"id": 2, "name": "tree"},
                                     {"id": 3, "name": "car"}, {"id": 4, "name": "boat"}]},
               "scene": info.describe()}
    (scene["detections"].parent / "scene.json").write_text(json.dumps(summary))
    doc = score(scene["detections"], scene["objects"], tmp_path / "s",
                ScoreOptions(class_field="kind")).document
    assert doc["objects"] == 4
    assert doc["match"]["extent"]["from"].endswith("scene.json")
    assert doc["only_in_predictions"] == ["tree", "boat"]   # model classes never seen


def test_without_extent_every_object_counts_and_aoi_restricts(scene: dict[str, Path],
                                                              tmp_path: Path) -> None:
    doc = score(scene["detections"], scene["objects"], tmp_path / "a",
                ScoreOptions(class_field="kind")).document
    assert doc["match"]["extent"] is None
    assert doc["per_class"]["building"]["fn"] == 3 and doc["objects"] == 5
    half = gpd.GeoDataFrame(geometry=[shapely.box(X0, Y0 - 1000, X0 + 500, Y0)], crs=UTM)
    half.to_crs("EPSG:3035").to_file(tmp_path / "aoi.gpkg")
    doc = score(scene["detections"], scene["objects"], tmp_path / "b",
                ScoreOptions(class_field="kind", aoi=str(tmp_path / "aoi.gpkg"))).document
    assert doc["objects"] == 2 and doc["detections"] == 4      # A, B; and A, B', A, tree
    assert doc["per_class"]["building"]["tp"] == 1


def test_labels_without_a_class_field_are_the_detections_one_class(
        scene: dict[str, Path], tmp_path: Path) -> None:
    one = gpd.read_file(scene["detections"])
    one = one[one["class"] == "building"]
    one.to_file(tmp_path / "one.detections.geojson", driver="GeoJSON")
    doc = score(tmp_path / "one.detections.geojson", scene["objects"], tmp_path / "s",
                ScoreOptions(scene=str(scene["raster"]))).document
    assert doc["per_class"]["building"]["objects"] == 4       # the car is a 'building' now
    assert doc["only_in_labels"] == [] and doc["only_in_predictions"] == []


def test_greedy_matching_by_score() -> None:
    """The best-scored detection takes the object first, even when a later one fits better."""
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    preds = np.array([[0, 0, 10, 8],          # IoU 0.8 with object 0, score 0.9
                      [0, 0, 10, 10],         # IoU 1.0 with object 0, score 0.5: too late
                      [21, 0, 31, 10]],       # IoU 9/11 with object 1
                     float)
    taken = match_boxes(preds, np.array([0.9, 0.5, 0.7]), np.array([1, 1, 1]), truth,
                        np.array([1, 1]))
    assert taken.tolist() == [0, -1, 1]
    other_class = match_boxes(preds, np.array([0.9, 0.5, 0.7]), np.array([2, 2, 2]), truth,
                              np.array([1, 1]))
    assert other_class.tolist() == [-1, -1, -1]
    matches = DetectionMatches(3)
    matches.update(preds, np.array([0.9, 0.5, 0.7]), np.array([1, 1, 1]), truth,
                   np.array([1, 1]))
    matches.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), truth[:1], np.array([2]))
    tp, fp, fn = matches.counts()
    assert (tp.tolist(), fp.tolist(), fn.tolist()) == ([0, 2, 0], [0, 1, 0], [0, 0, 1])


def test_an_empty_detection_file_finds_nothing(scene: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "none.detections.geojson"
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    doc = score(empty, scene["objects"], tmp_path / "s",
                ScoreOptions(class_field="kind", scene=str(scene["raster"]))).document
    assert (doc["detections"], doc["objects"], doc["recall"], doc["precision"]) == (0, 4, 0.0,
                                                                                   None)
    assert doc["map_50"] == 0.0 and doc["only_in_labels"] == ["building", "car"]
