"""Classification: a coarse class grid aligned to the scene, and GeoJSON cells."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from geovision.inference import infer
from geovision.synthetic import make_sample
from tests.inference.infer_helpers import write_bundle


def test_coarse_grid_is_aligned_to_the_scene(tmp_path):
    bundle = write_bundle(tmp_path / "cls.pt", "classification", "resnet18", tile_size=64)
    sample = make_sample(tmp_path / "s", size=(200, 130), crss=("EPSG:4326",), seed=3,
                         nodata_corner=0.5)
    [summary] = infer(bundle, sample.rasters, tmp_path / "out", quiet=True)
    stride = summary.parameters["stride"]
    assert stride == 48
    with rasterio.open(sample.rasters[0]) as src:
        scene_t, crs, invalid = src.transform, src.crs, src.read_masks(1) == 0
    path = tmp_path / "out" / "scene.class.tif"
    with rasterio.open(path) as ds:
        assert ds.crs == crs
        assert ds.transform == scene_t * Affine.scale(stride)
        assert (ds.height, ds.width) == (-(-130 // stride), -(-200 // stride))
        grid = ds.read(1)
    assert cog_validate(str(path))[0]
    assert grid[0, 0] == 255 and invalid[:stride, :stride].all()  # a cell of nodata only
    assert (grid[grid != 255] < 5).all()
    cells = gpd.read_file(tmp_path / "out" / "scene.classes.geojson", engine="pyogrio")
    assert len(cells) == summary.counts["cells"] == (grid != 255).sum()
    assert set(cells.columns) >= {"class", "class_id", "score", "geometry"}
    first = cells.iloc[0]
    assert grid[first["row"], first["col"]] == first["class_id"]
    # the cell polygon covers its scene pixels
    x0, y0 = scene_t * (first["col"] * stride, first["row"] * stride)
    x1, y1 = scene_t * ((first["col"] + 1) * stride, (first["row"] + 1) * stride)
    minx, miny, maxx, maxy = first.geometry.bounds
    np.testing.assert_allclose([minx, maxy], [x0, y0], atol=1e-6)
    assert maxx <= x1 + 1e-6 and miny >= y1 - 1e-6
    doc = json.loads((tmp_path / "out" / "scene.json").read_text())
    assert doc["model"]["task"] == "classification"
