"""Scoring a class raster over a whole scene: equal to independent whole-raster computations."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Geod, Transformer
from rasterio.features import rasterize

from geovision.errors import InputError, OutputExistsError
from geovision.evaluation import ScoreOptions, is_complete, score
from geovision.formats import CLASS_NODATA as NODATA
from tests.evaluation.score_helpers import (
    Scene,
    burn_districts,
    confusion_by_name,
    write_class_raster,
)

FAST = {"replicates": 50}


def names_of(doc: dict) -> list[str]:
    return [c["name"] for c in doc["classes"]]


@pytest.mark.parametrize("block_size", [32, 1024])
def test_confusion_equals_whole_raster_computation(lux_scene: Scene, tmp_path: Path,
                                                   block_size: int) -> None:
    """Real sample: block-by-block score == one whole-raster rasterize + numpy count."""
    result = score(lux_scene.prediction, lux_scene.labels, tmp_path / "score",
                   ScoreOptions(class_field="NAME_1", block_size=block_size, **FAST))
    doc = result.document
    scored = lux_scene.predicted != NODATA
    expected = confusion_by_name(lux_scene.truth, lux_scene.names, lux_scene.predicted,
                                 lux_scene.names, scored, names_of(doc))
    assert np.array_equal(np.array(doc["confusion_matrix"]["pixels"]), expected)
    assert doc["pixels"] == int(scored.sum())
    h, w = lux_scene.truth.shape
    assert sum(doc["excluded"].values()) + doc["pixels"] == h * w
    assert doc["excluded"]["prediction_nodata"] == int((~scored).sum())
    assert doc["overall_accuracy"] == pytest.approx(np.trace(expected) / expected.sum())
    tp = np.diag(expected)
    iou = tp / (expected.sum(0) + expected.sum(1) - tp)
    for i, name in enumerate(names_of(doc)):
        assert doc["per_class"][name]["iou"] == pytest.approx(iou[i])
        assert doc["per_class"][name]["users_accuracy"] == pytest.approx(
            tp[i] / expected[:, i].sum())
        assert doc["per_class"][name]["producers_accuracy"] == pytest.approx(
            tp[i] / expected[i].sum())
    assert {p.name for p in (tmp_path / "score").iterdir()} == {
        "score.json", "report.md", "confusion_matrix.png"}
    assert json.loads((tmp_path / "score" / "score.json").read_text())["pixels"] == doc["pixels"]
    report = (tmp_path / "score" / "report.md").read_text()
    assert "| Diekirch |" in report and "Area-adjusted" in report


def test_area_matrix_on_a_geographic_grid_is_ellipsoidal(lux_scene: Scene,
                                                         tmp_path: Path) -> None:
    """EPSG:4326: each row's pixel area on WGS 84 (checked with pyproj's geodesic area)."""
    doc = score(lux_scene.prediction, lux_scene.labels, tmp_path / "s",
                ScoreOptions(class_field="NAME_1", replicates=0)).document
    assert doc["area"]["unit"] == "m2" and doc["area"]["method"] == "ellipsoidal"
    t = lux_scene.transform
    geod = Geod(ellps="WGS84")
    h, w = lux_scene.truth.shape
    row_area = []
    for r in range(h):
        top, bottom = t.f + t.e * r, t.f + t.e * (r + 1)
        area, _ = geod.polygon_area_perimeter([t.c, t.c + t.a, t.c + t.a, t.c],
                                              [bottom, bottom, top, top])
        row_area.append(abs(area))
    pixel_area = np.repeat(np.array(row_area)[:, None], w, axis=1)
    scored = lux_scene.predicted != NODATA
    order = names_of(doc)
    index = {n: i for i, n in enumerate(order)}
    k = len(order)
    r = np.array([index[lux_scene.names[v]] for v in lux_scene.truth[scored]])
    p = np.array([index[lux_scene.names[v]] for v in lux_scene.predicted[scored]])
    expected = np.bincount(r * k + p, weights=pixel_area[scored], minlength=k * k)
    np.testing.assert_allclose(np.array(doc["confusion_matrix"]["area"]).ravel(), expected,
                               rtol=1e-6)


def test_area_on_a_projected_grid_is_pixels_times_pixel_area(tmp_path: Path) -> None:
    transform = rasterio.Affine(10.0, 0, 500000.0, 0, -10.0, 6000000.0)
    pred = np.zeros((40, 50), np.uint8)
    pred[:, 25:] = 1
    names = {0: "background", 1: "field"}
    path = write_class_raster(tmp_path / "p.class.tif", pred, "EPSG:32633", transform, names)
    labels = gpd.GeoDataFrame({"kind": ["field"]}, geometry=[
        shapely.box(500000 + 200, 6000000 - 400, 500000 + 500, 6000000)], crs="EPSG:32633")
    labels.to_file(tmp_path / "l.gpkg")
    doc = score(path, tmp_path / "l.gpkg", tmp_path / "s",
                ScoreOptions(class_field="kind", replicates=0)).document
    assert doc["area"] == {"unit": "m2", "method": "planar", "pixel_area": 100.0,
                           "note": doc["area"]["note"]}
    counts = np.array(doc["confusion_matrix"]["pixels"])
    assert counts.tolist() == [[40 * 20, 0], [40 * 5, 40 * 25]]
    assert np.array(doc["confusion_matrix"]["area"]).tolist() == (counts * 100.0).tolist()
    adj = doc["area_adjusted"]["per_class"]["field"]
    assert adj["area"]["estimate"] == pytest.approx(40 * 30 * 100.0)
    assert adj["mapped_area"] == pytest.approx(40 * 25 * 100.0)


def test_names_on_one_side_are_reported_not_guessed(lux_scene: Scene, tmp_path: Path) -> None:
    """The map names 'Luxembourg' 'lake': one label class and one map class stay unmatched."""
    names = dict(lux_scene.names)
    names[3] = "lake"
    path = write_class_raster(tmp_path / "m.class.tif", lux_scene.predicted, lux_scene.crs,
                              lux_scene.transform, names)
    doc = score(path, lux_scene.labels, tmp_path / "s",
                ScoreOptions(class_field="NAME_1", **FAST)).document
    assert doc["only_in_predictions"] == ["lake"]
    assert doc["only_in_labels"] == ["Luxembourg"]
    order = names_of(doc)
    assert order == ["background", "Diekirch", "Grevenmacher", "lake", "Luxembourg"]
    scored = lux_scene.predicted != NODATA
    expected = confusion_by_name(lux_scene.truth, lux_scene.names, lux_scene.predicted, names,
                                 scored, order)
    matrix = np.array(doc["confusion_matrix"]["pixels"])
    assert np.array_equal(matrix, expected)
    assert matrix[order.index("lake")].sum() == 0          # no reference 'lake'
    assert matrix[:, order.index("Luxembourg")].sum() == 0  # never predicted
    lake = next(c for c in doc["classes"] if c["name"] == "lake")
    assert lake == {"index": 3, "name": "lake", "prediction_value": 3, "label_value": None,
                    "in_predictions": True, "in_labels": False}
    assert "Classes only in the labels (not matched): Luxembourg" in (
        tmp_path / "s" / "report.md").read_text()


def test_nodata_on_either_side_and_unnamed_values_are_left_out(lux_scene: Scene,
                                                               tmp_path: Path) -> None:
    """Raster labels with nodata on the same grid, and map values without a name."""
    ref_names = {0: "background", 1: "Diekirch", 2: "Grevenmacher", 3: "Luxembourg"}
    reference = lux_scene.truth.copy()
    reference[:30] = 200                               # label nodata: the north
    ref_path = write_class_raster(tmp_path / "ref.tif", reference, lux_scene.crs,
                                  lux_scene.transform, ref_names, nodata=200)
    predicted = lux_scene.predicted.copy()
    predicted[60:65] = 9                               # a value the map does not name
    path = write_class_raster(tmp_path / "m.class.tif", predicted, lux_scene.crs,
                              lux_scene.transform, lux_scene.names)
    doc = score(path, ref_path, tmp_path / "s", ScoreOptions(**FAST)).document
    valid_pred = (predicted != NODATA) & (predicted != 9)
    scored = valid_pred & (reference != 200)
    expected = confusion_by_name(reference, ref_names, predicted, lux_scene.names, scored,
                                 names_of(doc))
    assert np.array_equal(np.array(doc["confusion_matrix"]["pixels"]), expected)
    assert doc["labels"]["form"] == "raster" and doc["labels"]["names_from"] == "metadata"
    assert doc["excluded"] == {
        "outside_aoi": 0, "prediction_nodata": int((predicted == NODATA).sum()),
        "prediction_unnamed": int((predicted == 9).sum()),
        "no_reference": int((valid_pred & (reference == 200)).sum())}
    assert doc["unnamed_values"]["predictions"] == {"9": int((predicted == 9).sum())}


def test_aoi_in_another_crs_restricts_the_pixels(lux_scene: Scene, tmp_path: Path) -> None:
    """Only pixels whose centre is in the AOI (two cantons, given in EPSG:3035) count."""
    cantons = gpd.read_file(lux_scene.labels)
    aoi = cantons[cantons["NAME_2"].isin(["Clervaux", "Wiltz"])].to_crs("EPSG:3035")
    aoi[["geometry"]].to_file(tmp_path / "aoi.gpkg")
    doc = score(lux_scene.prediction, lux_scene.labels, tmp_path / "s",
                ScoreOptions(class_field="NAME_1", aoi=str(tmp_path / "aoi.gpkg"),
                             block_size=32, **FAST)).document
    inside = rasterize(aoi.to_crs(lux_scene.crs).geometry, out_shape=lux_scene.truth.shape,
                       transform=lux_scene.transform, fill=0, dtype="uint8") > 0
    scored = inside & (lux_scene.predicted != NODATA)
    expected = confusion_by_name(lux_scene.truth, lux_scene.names, lux_scene.predicted,
                                 lux_scene.names, scored, names_of(doc))
    assert np.array_equal(np.array(doc["confusion_matrix"]["pixels"]), expected)
    assert doc["excluded"]["outside_aoi"] == int((~inside).sum())
    assert 0 < doc["pixels"] < int((lux_scene.predicted != NODATA).sum())


def test_raster_labels_in_another_crs_are_read_nearest(lux_scene: Scene,
                                                      tmp_path: Path) -> None:
    """A label map in UTM with other values than the map's: matched by name, and each pixel
    takes the label pixel under its centre (computed here with pyproj for every pixel).

    GDAL and PROJ may round apart where a centre falls within 1/100 pixel of a label pixel's
    edge; a pixel there may take either neighbour, and nowhere else may the counts differ.
    """
    ref_names = {0: "background", 10: "Luxembourg", 20: "Diekirch", 30: "Grevenmacher"}
    utm = "EPSG:32632"
    frame = gpd.read_file(lux_scene.labels).to_crs(utm)
    x0, y0, x1, y1 = frame.total_bounds
    transform = rasterio.Affine(500.0, 0, x0 - 2000, 0, -500.0, y1 + 2000)
    shape = (int((y1 - y0 + 4000) // 500), int((x1 - x0 + 4000) // 500))
    values = burn_districts(lux_scene.labels, shape, transform, ref_names, crs=utm)
    values[: shape[0] // 6] = 255                  # nodata strip in the north
    ref = write_class_raster(tmp_path / "ref.tif", values, utm, transform, ref_names,
                             nodata=255)
    doc = score(lux_scene.prediction, ref, tmp_path / "s",
                ScoreOptions(block_size=32, **FAST)).document
    rows, cols = np.mgrid[0:lux_scene.truth.shape[0], 0:lux_scene.truth.shape[1]]
    xs, ys = lux_scene.transform @ (cols + 0.5, rows + 0.5)
    ux, uy = Transformer.from_crs(lux_scene.crs, utm, always_xy=True).transform(xs, ys)
    fc, fr = ~transform @ (ux, uy)
    r, c = np.floor(fr).astype(int), np.floor(fc).astype(int)
    on = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
    under = np.full(lux_scene.truth.shape, 255, np.uint8)
    under[on] = values[r[on], c[on]]
    scored = (lux_scene.predicted != NODATA) & (under != 255)
    expected = confusion_by_name(under, ref_names, lux_scene.predicted, lux_scene.names,
                                 scored, names_of(doc))
    near_edge = ((fr - r < 0.01) | (fr - r > 0.99) | (fc - c < 0.01) | (fc - c > 0.99)) & on
    differ = np.abs(np.array(doc["confusion_matrix"]["pixels"]) - expected).sum()
    assert differ <= 2 * int(near_edge.sum())
    assert near_edge.sum() < 0.05 * on.sum()
    assert doc["pixels"] == pytest.approx(int(scored.sum()), abs=int(near_edge.sum()))
    assert doc["only_in_labels"] == [] and doc["only_in_predictions"] == []
    assert doc["labels"]["names_from"] == "metadata"
    assert {c["name"]: c["label_value"] for c in doc["classes"]} == {
        "background": 0, "Diekirch": 20, "Grevenmacher": 30, "Luxembourg": 10}


def test_a_class_map_names_a_raster_without_names(lux_scene: Scene, tmp_path: Path) -> None:
    bare = write_class_raster(tmp_path / "bare.tif", lux_scene.predicted, lux_scene.crs,
                              lux_scene.transform, None)
    with pytest.raises(InputError, match=r"bare.tif: no class names in its metadata .*"
                                         r"give --class-map FILE"):
        score(bare, lux_scene.labels, tmp_path / "a", ScoreOptions(class_field="NAME_1"))
    (tmp_path / "classes.yaml").write_text(
        "classes:\n  0: background\n  1: {name: Diekirch, color: '#ff0000'}\n"
        "  2: Grevenmacher\n  3: Luxembourg\n")
    named = score(bare, lux_scene.labels, tmp_path / "b",
                  ScoreOptions(class_field="NAME_1", class_map=str(tmp_path / "classes.yaml"),
                               **FAST)).document
    ours = score(lux_scene.prediction, lux_scene.labels, tmp_path / "c",
                 ScoreOptions(class_field="NAME_1", **FAST)).document
    assert named["predictions"]["names_from"] == "class_map"
    assert named["confusion_matrix"] == ours["confusion_matrix"]
    assert named["area_adjusted"] == ours["area_adjusted"]


def test_outputs_are_never_overwritten_unless_asked(lux_scene: Scene, tmp_path: Path) -> None:
    out = tmp_path / "s"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    opts = ScoreOptions(class_field="NAME_1", replicates=0)
    assert not is_complete(out)
    score(lux_scene.prediction, lux_scene.labels, out, opts)
    assert is_complete(out)
    with pytest.raises(OutputExistsError, match=r"holds confusion_matrix.png, report.md, "
                                                r"score.json of an earlier score; use "
                                                r"--overwrite"):
        score(lux_scene.prediction, lux_scene.labels, out, opts)
    score(lux_scene.prediction, lux_scene.labels, out, opts, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_intervals_are_seeded_and_do_not_depend_on_the_read_windows(lux_scene: Scene,
                                                                   tmp_path: Path) -> None:
    """Blocks get their own seeded weights: windows of 16, 40 or 1024 pixels give the same
    replicates, hence the same intervals; another seed gives others."""
    def adjusted(block_size: int, seed: int) -> dict:
        return score(lux_scene.prediction, lux_scene.labels, tmp_path / f"{block_size}-{seed}",
                     ScoreOptions(class_field="NAME_1", block_size=block_size,
                                  bootstrap_block=8, replicates=200, seed=seed)
                     ).document["area_adjusted"]

    def intervals(adj: dict) -> list[float]:
        out = list(adj["overall_accuracy"]["ci95"])
        for record in adj["per_class"].values():
            for key in ("area", "users_accuracy", "producers_accuracy"):
                out += record[key]["ci95"]
        return out

    base = adjusted(1024, 0)
    for block_size in (16, 40):
        assert intervals(adjusted(block_size, 0)) == pytest.approx(intervals(base), rel=1e-9)
    assert adjusted(1024, 1)["overall_accuracy"]["ci95"] != base["overall_accuracy"]["ci95"]
    oa = base["overall_accuracy"]
    assert oa["ci95"][0] < oa["estimate"] < oa["ci95"][1]
    scored = lux_scene.predicted != NODATA
    busy = {(r // 8, c // 8) for r, c in zip(*np.nonzero(scored), strict=True)}
    assert base["bootstrap"]["blocks"] == len(busy)
    assert base["bootstrap"]["replicates"] == 200


def test_errors_name_the_option(lux_scene: Scene, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--class-field: without it every feature is one "
                                         r"class, but the predictions have 3 classes"):
        score(lux_scene.prediction, lux_scene.labels, tmp_path / "a", ScoreOptions())
    with pytest.raises(InputError, match=r"--unlabeled: 'none' is not a choice for "
                                         r"unlabeled pixels; choose one of background, ignore"):
        score(lux_scene.prediction, lux_scene.labels, tmp_path / "b",
              ScoreOptions(unlabeled="none"))
    with pytest.raises(InputError, match=r"--block-size: 8 must be at least 16 \(pixels\)"):
        score(lux_scene.prediction, lux_scene.labels, tmp_path / "c",
              ScoreOptions(block_size=8))
    with pytest.raises(InputError, match=r"field 'KIND' not found"):
        score(lux_scene.prediction, lux_scene.labels, tmp_path / "d",
              ScoreOptions(class_field="KIND"))


def test_unlabeled_pixels_can_be_left_out(lux_scene: Scene, tmp_path: Path) -> None:
    """unlabeled='ignore': only pixels inside a label polygon have a reference."""
    doc = score(lux_scene.prediction, lux_scene.labels, tmp_path / "s",
                ScoreOptions(class_field="NAME_1", unlabeled="ignore", **FAST)).document
    scored = (lux_scene.predicted != NODATA) & (lux_scene.truth > 0)
    expected = confusion_by_name(lux_scene.truth, lux_scene.names, lux_scene.predicted,
                                 lux_scene.names, scored, names_of(doc))
    matrix = np.array(doc["confusion_matrix"]["pixels"])
    assert np.array_equal(matrix, expected)
    assert matrix[names_of(doc).index("background")].sum() == 0
    assert doc["only_in_predictions"] == ["background"]
    assert doc["excluded"]["no_reference"] == int(
        ((lux_scene.predicted != NODATA) & (lux_scene.truth == 0)).sum())


def test_raster_labels_without_nodata_cover_only_their_footprint(tmp_path: Path) -> None:
    """A label raster with no nodata value, classes by value: 0 is background inside it,
    outside it there is no reference; values are not names (class '1' is not 'water')."""
    pred = np.zeros((40, 40), np.uint8)
    pred[:, 20:] = 1
    names = {0: "background", 1: "water"}
    path = write_class_raster(tmp_path / "p.class.tif", pred, "EPSG:32633",
                              rasterio.Affine(10, 0, 500000, 0, -10, 6000000), names)
    ref = np.zeros((20, 40), np.uint8)                 # the northern half, 0 and 1
    ref[:, 30:] = 1
    ref_path = write_class_raster(tmp_path / "ref.tif", ref, "EPSG:32633",
                                  rasterio.Affine(10, 0, 500000, 0, -10, 6000000), None,
                                  nodata=None)
    doc = score(path, ref_path, tmp_path / "s",
                ScoreOptions(class_map=None, replicates=0)).document
    assert doc["labels"]["names_from"] == "values"
    assert names_of(doc) == ["background", "water", "1"]
    assert doc["only_in_labels"] == ["1"]                       # not guessed as 'water'
    assert doc["excluded"]["no_reference"] == 20 * 40
    assert np.array(doc["confusion_matrix"]["pixels"]).tolist() == [
        [20 * 20, 20 * 10, 0], [0, 0, 0], [0, 20 * 10, 0]]
    (tmp_path / "map.yaml").write_text("classes:\n  0: background\n  1: water\n")
    doc = score(path, ref_path, tmp_path / "t",
                ScoreOptions(class_map=str(tmp_path / "map.yaml"), replicates=0)).document
    assert np.array(doc["confusion_matrix"]["pixels"]).tolist() == [
        [20 * 20, 20 * 10], [0, 20 * 10]]


def test_one_bootstrap_block_gives_no_interval(lux_scene: Scene, tmp_path: Path) -> None:
    result = score(lux_scene.prediction, lux_scene.labels, tmp_path / "s",
                   ScoreOptions(class_field="NAME_1", bootstrap_block=256))
    adj = result.document["area_adjusted"]
    assert adj["bootstrap"]["blocks"] == 1 and adj["bootstrap"]["replicates"] == 0
    assert adj["overall_accuracy"]["ci95"] is None
    assert adj["bootstrap"]["warning"].startswith("one block: no interval")
    assert "95% CI" not in result.summary()


def test_labels_that_miss_the_map_are_an_error(lux_scene: Scene, tmp_path: Path) -> None:
    far = gpd.GeoDataFrame(geometry=[shapely.box(100, 10, 101, 11)], crs="EPSG:4326")
    far.to_file(tmp_path / "far.gpkg")
    with pytest.raises(InputError, match=r"lux.class.tif: no pixel has both a prediction and "
                                         r"a reference .* and the area of interest"):
        score(lux_scene.prediction, lux_scene.labels, tmp_path / "s",
              ScoreOptions(class_field="NAME_1", aoi=str(tmp_path / "far.gpkg")))
    assert not (tmp_path / "s" / "score.json").exists()


def test_a_class_map_numbers_vector_labels_as_tiling_does(tmp_path: Path) -> None:
    """Field codes 2 and 10 kept as ids by a class map: predictions holding the ids 2 and 10
    agree with the labels; a code the map ignores is not scored, one it makes background is."""
    from affine import Affine

    transform = Affine(10, 0, 500000, 0, -10, 5000000)
    boxes = {2: (0, 0, 10, 20), 10: (10, 0, 16, 10), 99: (16, 0, 20, 20), 0: (10, 10, 16, 20)}
    geoms = [shapely.box(*(transform * (c0, r1)), *(transform * (c1, r0)))
             for c0, r0, c1, r1 in boxes.values()]
    gpd.GeoDataFrame({"code": list(boxes)}, geometry=geoms, crs="EPSG:32633").to_file(
        tmp_path / "labels.gpkg")
    pred = np.zeros((20, 20), np.uint8)
    pred[:, :10], pred[:10, 10:16] = 2, 10  # code 0 area predicted background
    pred[:, 16:] = 10  # the ignored area: whatever is predicted there is not scored
    with rasterio.open(tmp_path / "pred.tif", "w", driver="GTiff", width=20, height=20,
                       count=1, dtype="uint8", crs="EPSG:32633", transform=transform) as dst:
        dst.write(pred, 1)
    (tmp_path / "classes.yaml").write_text(
        "classes:\n  2: {name: land}\n  10: {name: building}\n  0: background\n  99: ignore\n")
    score(tmp_path / "pred.tif", tmp_path / "labels.gpkg", tmp_path / "score",
          ScoreOptions(class_field="code", class_map=str(tmp_path / "classes.yaml"),
                       replicates=0))
    doc = json.loads((tmp_path / "score" / "score.json").read_text())
    assert names_of(doc) == ["background", "land", "building"]
    assert doc["overall_accuracy"] == 1.0
    assert np.array(doc["confusion_matrix"]["pixels"]).sum() == 20 * 16
