"""`geovision vectorize`: any class raster to polygons from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine

from geovision.cli.main import main
from tests.geo.polygon_helpers import whole_raster

TRANSFORM = Affine(2.0, 0.0, 600_000.0, 0.0, -2.0, 5_000_000.0)


def write_raster(path: Path, array: np.ndarray, *, nodata: float | None = 255,
                 tags: dict[str, str] | None = None) -> Path:
    count = 1 if array.ndim == 2 else array.shape[0]
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[-1],
                       height=array.shape[-2], count=count, dtype=array.dtype,
                       crs="EPSG:32633", transform=TRANSFORM, nodata=nodata) as dst:
        dst.write(array if array.ndim == 3 else array[None])
        if tags:
            dst.update_tags(1, **tags)
    return path


@pytest.fixture
def class_raster(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    classes = np.kron(rng.integers(0, 3, (9, 12)), np.ones((5, 5), np.int64)).astype(np.uint8)
    classes[:4, :6] = 255
    return write_raster(tmp_path / "other.tif", classes,
                        tags={"class_1": "road", "class_2": "field"}), classes


def test_vectorize_writes_layers_and_reports(tmp_path, class_raster, capsys):
    src, classes = class_raster
    out = tmp_path / "vectors.gpkg"
    assert main(["vectorize", str(src), "-o", str(out), "--classes", "road",
                 "--min-area", "50", "--min-area-unit", "m2", "--block-size", "16",
                 "--workers", "1"]) == 0
    line = capsys.readouterr().out
    assert "polygons (road" in line and f"{out} (layer other)" in line
    frame = pyogrio.read_dataframe(out, layer="other")
    ref, _ = whole_raster(classes, {1})
    areas = np.array([g.area for g in ref]) * 4.0  # 2 m pixels
    assert len(frame) == int((areas >= 50).sum()) > 0
    assert set(frame["class"]) == {"road"} and frame["mean_prob"].isna().all()
    # a second run adds its own layer; the same layer again needs --overwrite
    prob = write_raster(tmp_path / "prob.tif",
                        np.full((3, *classes.shape), 0.75, np.float32), nodata=None)
    argv = ["vectorize", str(src), "-o", str(out), "--layer", "fields", "--classes", "2",
            "--probabilities", str(prob), "--workers", "1", "-q"]
    assert main(argv) == 0
    assert sorted(pyogrio.list_layers(out)[:, 0].tolist()) == ["fields", "other"]
    fields = pyogrio.read_dataframe(out, layer="fields")
    assert set(fields["class"]) == {"field"}
    np.testing.assert_allclose(fields["mean_prob"], 0.75)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "layer 'fields' exists already (use --overwrite to replace it" in err
    assert main([*argv, "--overwrite"]) == 0


@pytest.mark.parametrize(("extra", "message"), [
    (["--format", "shp"], "'shp' is not one of 'gpkg', 'geojson'"),
    (["--min-area", "-1"], "--min-area"),
    (["--layer", "rtree_x"], "'rtree_x' starts with a prefix GeoPackage reserves"),
    (["--classes", "roads"], "--classes: unknown class 'roads'; classes are: 1=road, 2=field"),
])
def test_mistakes_are_one_line_naming_the_option(tmp_path, class_raster, capsys, extra,
                                                 message):
    src, _ = class_raster
    out = tmp_path / "x.gpkg"
    assert main(["vectorize", str(src), "-o", str(out), "--workers", "1", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_geojson_output(tmp_path, class_raster):
    src, classes = class_raster
    out = tmp_path / "v.geojson"
    assert main(["vectorize", str(src), "-o", str(out), "--format", "geojson", "--simplify",
                 "1", "--workers", "1", "-q"]) == 0
    info = pyogrio.read_info(out)
    ref, _ = whole_raster(classes)
    assert info["features"] == len(ref)


def test_background_only_when_listed_and_the_summary_counts_per_class(tmp_path, class_raster):
    src, classes = class_raster
    out, summary = tmp_path / "v.gpkg", tmp_path / "runs" / "v.json"
    assert main(["vectorize", str(src), "-o", str(out), "--workers", "1", "--block-size",
                 "16", "--summary", str(summary), "-q"]) == 0
    frame = pyogrio.read_dataframe(out)
    ref, ref_class = whole_raster(classes)  # background (0) and nodata left out
    assert 0 not in set(frame["class_id"]) and len(frame) == len(ref)
    doc = json.loads(summary.read_text())
    names = {1: "road", 2: "field"}
    ids, counts = np.unique(ref_class, return_counts=True)
    assert doc["per_class"] == {names[int(k)]: int(n)
                                for k, n in zip(ids, counts, strict=True)}
    assert doc["features"] == len(ref) and doc["stitched"] > 0 and doc["seconds"] > 0
    assert doc["layer"] == "other" and doc["blocks"] == 12  # 45 x 60 in 16-pixel blocks
    # listed, background is vectorized like any class
    out0 = tmp_path / "v0.gpkg"
    assert main(["vectorize", str(src), "-o", str(out0), "--classes", "0,road",
                 "--classes", "2", "--workers", "1", "-q"]) == 0
    frame0 = pyogrio.read_dataframe(out0)
    ref0, ref0_class = whole_raster(classes, {0, 1, 2})
    assert len(frame0) == len(ref0)
    assert sorted(frame0["class_id"]) == sorted(ref0_class.tolist())
    assert set(frame0.loc[frame0["class_id"] == 0, "class"]) == {"0"}  # unnamed: its id


def test_min_area_in_pixels_or_square_metres(tmp_path, class_raster):
    src, classes = class_raster
    kept = {}
    for unit, value in (("pixels", "30"), ("m2", "120")):  # 2 m pixels: 30 px = 120 m²
        out = tmp_path / f"{unit}.gpkg"
        assert main(["vectorize", str(src), "-o", str(out), "--min-area", value,
                     "--min-area-unit", unit, "--workers", "1", "-q"]) == 0
        frame = pyogrio.read_dataframe(out)
        assert (frame["pixels"] >= 30).all()
        np.testing.assert_allclose(frame["area"], frame["pixels"] * 4.0)
        kept[unit] = sorted(zip(frame["class_id"], frame["pixels"], strict=True))
    ref, _ = whole_raster(classes)
    assert kept["pixels"] == kept["m2"]
    assert len(kept["pixels"]) == int((shapely.area(ref) >= 30).sum())


def blobs(height: int, width: int, seed: int) -> np.ndarray:
    """Classes 0, 1, 2 in smooth blobs with staircase edges (noise box-filtered, cut in 3)."""
    noise = np.random.default_rng(seed).random((height + 9, width + 9))
    s = noise.cumsum(0).cumsum(1)
    smooth = s[9:, 9:] - s[:-9, 9:] - s[9:, :-9] + s[:-9, :-9]
    cuts = np.quantile(smooth, [0.4, 0.7])
    return np.digitize(smooth, cuts).astype(np.uint8)


def test_simplified_polygons_still_tile_the_scene(tmp_path):
    classes = blobs(90, 120, seed=4)
    classes[:6, :10] = 255
    src = write_raster(tmp_path / "blobs.tif", classes)
    coords = {}
    for tol in ("0", "1.5"):
        out = tmp_path / f"s{tol}.gpkg"
        assert main(["vectorize", str(src), "-o", str(out), "--classes", "0,1,2", "--simplify",
                     tol, "--block-size", "16", "--workers", "1", "-q"]) == 0
        frame = pyogrio.read_dataframe(out)
        geoms = frame.geometry.to_numpy()
        coords[tol] = shapely.get_num_coordinates(geoms).sum()
        assert len(frame) == len(whole_raster(classes, {0, 1, 2})[0])
        assert shapely.is_valid(geoms).all()
        union = shapely.union_all(geoms)
        # no overlaps: the areas add up to the union's; no gaps: the union has no holes, keeps
        # the scene's outline and covers its valid pixels (exactly when not simplified: the
        # edge along the nodata corner is simplified too)
        assert abs(shapely.area(geoms).sum() - union.area) < 1e-6 * union.area
        assert union.geom_type == "Polygon" and not union.interiors
        assert union.bounds == (600_000.0, 5_000_000.0 - 180, 600_000.0 + 240, 5_000_000.0)
        np.testing.assert_allclose(union.area, (classes != 255).sum() * 4.0,
                                   rtol=1e-9 if tol == "0" else 1e-3)
        # pixels and area stay those of the exact region
        np.testing.assert_allclose(frame["area"], frame["pixels"] * 4.0)
    assert coords["1.5"] < 0.8 * coords["0"]
