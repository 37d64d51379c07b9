"""`vectorize()`: class raster files to GeoPackage / GeoJSON, read block by block."""

from __future__ import annotations

import json

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Transformer

from geovision.errors import InputError, OutputExistsError
from geovision.geo.polygons import PolygonOptions
from geovision.geo.vectorize import block_shape_for, raster_class_names, vectorize
from tests.geo.polygon_helpers import NODATA, assert_same_regions, flood_fill, whole_raster

TRANSFORM = Affine(0.5, 0.0, 500_000.0, 0.0, -0.5, 4_650_000.0)
NAMES = [{"id": 0, "name": "background"}, {"id": 1, "name": "building"},
         {"id": 2, "name": "water"}, {"id": 3, "name": "forest"}]


def class_array(h: int = 90, w: int = 77, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    classes = np.kron(rng.integers(0, 4, (h // 6 + 1, w // 6 + 1)), np.ones((6, 6), int))
    classes = classes[:h, :w].astype(np.uint8)
    noise = rng.random((h, w)) < 0.04
    classes[noise] = rng.integers(0, 4, noise.sum())
    classes[:9, :13] = NODATA
    return classes


def write_classes(path, classes, *, tiled=True, names=True, crs="EPSG:32618", nodata=NODATA,
                  transform=TRANSFORM):
    profile = {"driver": "GTiff", "height": classes.shape[0], "width": classes.shape[1],
               "count": 1, "dtype": classes.dtype.name, "crs": crs, "transform": transform,
               "nodata": nodata}
    if tiled:
        profile.update(tiled=True, blockxsize=16, blockysize=16)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(classes, 1)
        if names:
            dst.update_tags(classes=json.dumps(NAMES))
    return str(path)


def map_polygons(geoms, transform=TRANSFORM):
    t = transform
    return shapely.transform(geoms, lambda xy: np.column_stack(
        [t.a * xy[:, 0] + t.c, t.e * xy[:, 1] + t.f]))


def to_pixels(geoms):
    return map_polygons(geoms, ~TRANSFORM)


def test_gpkg_equals_whole_raster_polygons_with_attributes(tmp_path):
    classes = class_array()
    src = write_classes(tmp_path / "scene.class.tif", classes)
    out = tmp_path / "scene.polygons.gpkg"
    summary = vectorize(src, out, PolygonOptions(), block_size=20, workers=1)

    info = pyogrio.read_info(out)
    # the layer is named after the class raster (the run that made it) unless one is given
    assert pyogrio.list_layers(out)[:, 0].tolist() == ["scene.class"] == [summary.layer]
    assert CRS(info["crs"]) == CRS("EPSG:32618")
    assert info["fields"].tolist() == ["class", "class_id", "area", "mean_prob", "pixels"]
    assert info["geometry_type"] == "Polygon"
    frame = pyogrio.read_dataframe(out)
    ref, ref_class = whole_raster(classes)
    assert_same_regions(to_pixels(frame.geometry.values), frame["class_id"].to_numpy(),
                        ref, ref_class, classes.shape)
    # attributes: names from the raster's tags, areas in m² (0.25 m² pixels), no probabilities
    assert (frame["class"] == frame["class_id"].map({1: "building", 2: "water",
                                                      3: "forest"})).all()
    np.testing.assert_allclose(frame["area"], frame["pixels"] * 0.25)
    np.testing.assert_allclose(frame.geometry.area, frame["area"])
    assert frame["mean_prob"].isna().all()
    assert summary.features == len(frame) == len(ref)
    assert summary.per_class == {n: int((frame["class"] == n).sum())
                                 for n in ("building", "water", "forest")}
    assert summary.blocks == 5 * 4 and summary.block_shape == (20, 20)
    json.dumps(summary.describe())


def test_two_worker_processes_give_the_same_polygons(tmp_path):
    classes = class_array(64, 70, seed=4)
    src = write_classes(tmp_path / "c.tif", classes)
    one = vectorize(src, tmp_path / "one.gpkg", block_size=16, workers=1)
    two = vectorize(src, tmp_path / "two.gpkg", block_size=16, workers=2)
    assert two.workers == 2 and two.worker_peak_rss_mb > 0
    a = pyogrio.read_dataframe(tmp_path / "one.gpkg").sort_values(["class_id", "pixels"])
    b = pyogrio.read_dataframe(tmp_path / "two.gpkg")
    assert one.features == two.features == len(b)
    assert_same_regions(to_pixels(a.geometry.values), a["class_id"].to_numpy(),
                        to_pixels(b.geometry.values), b["class_id"].to_numpy(), classes.shape)


def test_geojson_is_rfc7946_wgs84(tmp_path):
    classes = class_array(40, 50, seed=2)
    src = write_classes(tmp_path / "c.tif", classes)
    out = tmp_path / "c.polygons.geojson"
    vectorize(src, out, PolygonOptions(format="geojson", classes=("water",)), block_size=16,
              workers=1)
    doc = json.loads(out.read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    feats = doc["features"]
    assert {f["properties"]["class"] for f in feats} == {"water"}
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in feats])
    assert shapely.is_ccw(shapely.get_exterior_ring(geoms)).all()
    lon, lat = shapely.get_coordinates(geoms).T
    assert (np.abs(lon + 75) < 0.1).all() and (np.abs(lat - 42) < 0.1).all()
    assert CRS(pyogrio.read_info(out)["crs"]) == CRS("EPSG:4326")
    # back in UTM the polygons are the whole-raster ones, to the 7th decimal of a degree
    back = Transformer.from_crs("EPSG:4326", "EPSG:32618", always_xy=True)
    utm = shapely.transform(geoms, lambda xy: np.column_stack(back.transform(*xy.T)))
    ref, _ = whole_raster(classes, {2})
    ref = map_polygons(ref)
    assert len(utm) == len(ref)
    areas = np.sort(shapely.area(utm))
    np.testing.assert_allclose(areas, np.sort(shapely.area(ref)), rtol=1e-3, atol=0.02)
    props = feats[0]["properties"]
    assert set(props) == {"class", "class_id", "area", "mean_prob", "pixels"}
    assert props["mean_prob"] is None


def test_mean_prob_from_a_compact_probability_raster(tmp_path):
    classes = class_array(33, 41, seed=6)
    rng = np.random.default_rng(1)
    probs = rng.integers(0, 255, (4, 33, 41)).astype(np.uint8)
    src = write_classes(tmp_path / "c.tif", classes)
    prob_path = tmp_path / "c.prob.tif"
    with rasterio.open(prob_path, "w", driver="GTiff", height=33, width=41, count=4,
                       dtype="uint8", crs="EPSG:32618", transform=TRANSFORM, nodata=255) as dst:
        dst.write(probs)
        dst.scales = [1 / 254] * 4
        dst.offsets = [0.0] * 4
    out = tmp_path / "c.gpkg"
    vectorize(src, out, probabilities=prob_path, block_size=10, workers=1)
    frame = pyogrio.read_dataframe(out)
    expected = sorted((v, len(p), round(probs[(v, *np.array(p).T)].mean() / 254, 9))
                      for v, p in flood_fill(classes))
    got = sorted(zip(frame["class_id"], frame["pixels"], np.round(frame["mean_prob"], 9),
                     strict=True))
    assert got == expected


def test_min_area_in_square_metres_and_simplify(tmp_path):
    classes = class_array(60, 60, seed=3)
    src = write_classes(tmp_path / "c.tif", classes)
    out = tmp_path / "c.gpkg"
    summary = vectorize(src, out, PolygonOptions(min_area=3.0, min_area_unit="m2",
                                                 simplify=1.5, layer="run1"),
                        block_size=25, workers=1)
    frame = pyogrio.read_dataframe(out, layer="run1")
    big = [(v, len(p)) for v, p in flood_fill(classes) if len(p) * 0.25 >= 3.0]
    assert sorted(zip(frame["class_id"], frame["pixels"], strict=True)) == sorted(big)
    assert summary.dropped_small + len(frame) == len(flood_fill(classes))
    geoms = frame.geometry.values
    assert shapely.is_valid(geoms).all()
    assert shapely.area(geoms).sum() == pytest.approx(shapely.union_all(geoms).area)


def test_other_tools_rasters_strips_int16_and_no_names(tmp_path):
    classes = class_array(50, 40, seed=8).astype(np.int16)
    classes[classes == NODATA] = -1
    classes[classes == 3] = 300  # a class id past 8 bits
    src = write_classes(tmp_path / "other.tif", classes, tiled=False, names=False,
                        nodata=-1)
    with rasterio.open(src) as ds:
        assert raster_class_names(ds) == {}
        assert block_shape_for(ds, None) == (50, 40)  # whole strips, full width
    out = tmp_path / "other.gpkg"
    summary = vectorize(src, out, workers=1)
    frame = pyogrio.read_dataframe(out)
    assert set(frame["class"]) == {"1", "2", "300"}
    ref = [p for v, p in flood_fill(np.where(classes == -1, NODATA, classes).astype(np.int64))]
    assert summary.features == len(ref)


def test_block_shape_follows_the_internal_tiling(tmp_path):
    src = write_classes(tmp_path / "c.tif", class_array(100, 100))
    with rasterio.open(src) as ds:
        assert block_shape_for(ds, None) == (1024, 1024)
        assert block_shape_for(ds, 30) == (30, 30)


def test_errors_name_the_file_and_what_to_do(tmp_path):
    classes = class_array(20, 20)
    src = write_classes(tmp_path / "c.tif", classes)
    out = tmp_path / "c.gpkg"
    vectorize(src, out, workers=1)
    with pytest.raises(OutputExistsError, match="c.gpkg: layer 'c' exists already "
                                                r"\(use --overwrite to replace it, or --layer"):
        vectorize(src, out, workers=1)
    vectorize(src, out, workers=1, overwrite=True)
    text = tmp_path / "notes.gpkg"
    text.write_text("not a GeoPackage")
    with pytest.raises(OutputExistsError, match=r"notes.gpkg: exists already \(use --overwrite"):
        vectorize(src, text, workers=1)
    geojson = tmp_path / "c.geojson"
    vectorize(src, geojson, PolygonOptions(format="geojson"), workers=1)
    with pytest.raises(OutputExistsError, match="c.geojson: exists already"):
        vectorize(src, geojson, PolygonOptions(format="geojson"), workers=1)
    floats = write_classes(tmp_path / "f.tif", classes.astype(np.float32), nodata=None)
    with pytest.raises(InputError, match="f.tif: class raster has dtype float32"):
        vectorize(floats, tmp_path / "f.gpkg")
    other = write_classes(tmp_path / "p.tif", np.zeros((21, 20), np.uint8))
    with pytest.raises(InputError, match="p.tif: probabilities are on another grid"):
        vectorize(src, tmp_path / "x.gpkg", probabilities=other)
    few = write_classes(tmp_path / "few.tif", np.zeros((20, 20), np.uint8))
    with pytest.raises(InputError, match="has no probability band"):
        vectorize(src, tmp_path / "y.gpkg", probabilities=few, workers=1)
    assert not (tmp_path / "y.gpkg").exists()
    assert not list(tmp_path.glob(".*tmp*"))
    with pytest.raises(InputError, match="--classes: unknown class 'roads'"):
        vectorize(src, tmp_path / "z.gpkg", PolygonOptions(classes=("roads",)))


def test_a_run_adds_its_layer_to_an_existing_geopackage_and_overwrite_replaces_only_it(
        tmp_path):
    classes = class_array(30, 40, seed=2)
    src = write_classes(tmp_path / "c.tif", classes)
    out = tmp_path / "all.gpkg"
    every = vectorize(src, out, PolygonOptions(layer="every"), workers=1)
    water = vectorize(src, out, PolygonOptions(layer="water", classes=("water",)), workers=1)
    assert sorted(pyogrio.list_layers(out)[:, 0].tolist()) == ["every", "water"]
    assert pyogrio.read_info(out, layer="every")["features"] == every.features
    assert pyogrio.read_info(out, layer="water")["features"] == water.features
    assert water.per_class == {"water": water.features} and every.features > water.features
    # --overwrite replaces the layer it names, the other one stays
    forest = vectorize(src, out, PolygonOptions(layer="water", classes=("forest",)), workers=1,
                       overwrite=True)
    assert sorted(pyogrio.list_layers(out)[:, 0].tolist()) == ["every", "water"]
    frame = pyogrio.read_dataframe(out, layer="water")
    assert set(frame["class"]) == {"forest"} and len(frame) == forest.features
    assert pyogrio.read_info(out, layer="every")["features"] == every.features
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("fmt", ["gpkg", "geojson"])
def test_no_region_left_gives_an_empty_layer(tmp_path, fmt):
    src = write_classes(tmp_path / "c.tif", np.zeros((20, 30), np.uint8))
    out = tmp_path / f"c.polygons.{fmt}"
    summary = vectorize(src, out, PolygonOptions(format=fmt), workers=1)
    assert summary.features == 0 and summary.per_class == {}
    info = pyogrio.read_info(out)
    assert info["features"] == 0
    assert CRS(info["crs"]) == CRS("EPSG:32618" if fmt == "gpkg" else "EPSG:4326")


def test_blocks_stored_and_loaded_back_finish_like_one_run(tmp_path):
    """What `infer --vectors --resume` will do: block values saved by block tasks, finished
    later in any order by the scene's finishing task."""
    from geovision.geo.polygonize import polygonize_block
    from geovision.geo.polygons import load_block, make_plan, save_block
    from geovision.geo.vectorize import write_polygons

    classes = class_array(45, 52, seed=9)
    probs = np.random.default_rng(0).random((4, 45, 52))
    plan = make_plan(PolygonOptions(), height=45, width=52, transform=TRANSFORM,
                     crs="EPSG:32618", class_names={n["id"]: n["name"] for n in NAMES},
                     block_size=(20, 15))
    paths = [save_block(tmp_path / f"b{k}.npz", polygonize_block(
        plan, w, classes[w.slices], probs[(slice(None), *w.slices)]))
        for k, w in enumerate(plan.windows())]
    out = tmp_path / "scene.polygons.gpkg"
    summary = write_polygons(plan, (load_block(p) for p in reversed(paths)), out,
                             with_prob=True)
    frame = pyogrio.read_dataframe(out)
    ref, ref_class = whole_raster(classes)
    assert summary.features == len(frame) == len(ref)
    assert_same_regions(to_pixels(frame.geometry.values), frame["class_id"].to_numpy(), ref,
                        ref_class, classes.shape)
    expected = sorted((v, len(p), round(probs[(v, *np.array(p).T)].mean(), 9))
                      for v, p in flood_fill(classes))
    assert sorted(zip(frame["class_id"], frame["pixels"], np.round(frame["mean_prob"], 9),
                      strict=True)) == expected
