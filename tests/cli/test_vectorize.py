"""`geovision vectorize`: any class raster to polygons from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
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
