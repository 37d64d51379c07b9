"""`infer --vectors`: polygons traced piece by piece equal the whole class raster's polygons."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import CRS

from geovision.cli.main import main
from geovision.errors import InputError, OutputExistsError
from geovision.geo.vectorize import vectorize
from geovision.inference import infer
from geovision.models import registry
from geovision.options.vectorize import PolygonOptions
from geovision.synthetic import make_sample
from tests.geo.polygon_helpers import assert_same_regions, whole_raster
from tests.inference.infer_helpers import CLASSES
from tests.inference.vector_helpers import NAME, band_bins_bundle, register_band_bins

ROOT = Path(__file__).resolve().parents[2]
EVERY_CLASS = tuple(c["name"] for c in CLASSES)
FIELDS = ["class", "class_id", "area", "mean_prob", "pixels"]


@pytest.fixture
def small_window_bundle(tmp_path: Path) -> Iterator[Path]:
    """Tiles of 32 pixels (run with ``window=32``: a small scene is cut into many pieces and
    seams) of a model whose classes follow the scene's shapes (see ``vector_helpers``)."""
    yield band_bins_bundle(tmp_path / "seg.pt", tile_size=32)
    registry._REGISTRY["segmentation"].pop(NAME, None)


@pytest.fixture
def scene(tmp_path: Path) -> str:
    return make_sample(tmp_path / "s", size=(150, 110), seed=5).rasters[0]


def read_classes(path: Path) -> tuple[np.ndarray, rasterio.Affine]:
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform


def in_pixels(geoms: np.ndarray, transform: rasterio.Affine) -> np.ndarray:
    inverse = ~transform
    return shapely.transform(geoms, lambda xy: np.column_stack([
        inverse.a * xy[:, 0] + inverse.b * xy[:, 1] + inverse.c,
        inverse.d * xy[:, 0] + inverse.e * xy[:, 1] + inverse.f]))


def assert_polygons_of(gpkg: Path, layer: str, class_tif: Path, keep: set[int]) -> None:
    """The layer holds exactly the regions of one whole-raster polygonization of the classes."""
    classes, transform = read_classes(class_tif)
    frame = pyogrio.read_dataframe(gpkg, layer=layer)
    ref, ref_class = whole_raster(classes, keep)
    assert_same_regions(in_pixels(frame.geometry.values, transform),
                        frame["class_id"].to_numpy(), ref, ref_class, classes.shape)


def test_polygons_equal_the_whole_class_raster_across_every_seam(tmp_path, small_window_bundle,
                                                                  scene):
    out = tmp_path / "out"
    [summary] = infer(small_window_bundle, scene, out, window=32, block_windows=1, vectors=True,
                      vector_classes=EVERY_CLASS, quiet=True)
    gpkg = out / "scene.polygons.gpkg"
    assert summary.outputs == ("scene.class.tif", "scene.prob.tif", "scene.polygons.gpkg")
    # a layer named after the run (this bundle was never trained: the file's stem), in the
    # scene's CRS, with the attributes of every feature
    assert pyogrio.list_layers(gpkg)[:, 0].tolist() == ["seg"]
    info = pyogrio.read_info(gpkg, layer="seg")
    with rasterio.open(scene) as ds:
        assert CRS(info["crs"]) == CRS(ds.crs.to_wkt())
    assert info["fields"].tolist() == FIELDS and info["geometry_type"] == "Polygon"
    assert_polygons_of(gpkg, "seg", out / "scene.class.tif", {0, 1, 2, 3, 4})
    record = json.loads((out / "scene.json").read_text())["counts"]["polygons"]
    assert record["features"] == info["features"] == summary.counts["polygons"]["features"]
    assert record["stitched"] > 0 and record["blocks"] > 9  # regions did cross seams
    assert sum(record["per_class"].values()) == record["features"]
    assert record["layer"] == "seg" and record["path"] == "scene.polygons.gpkg"
    assert record["seconds"] > 0 and "polygons" in summary.timings
    assert not (out / ".scene.partial").exists()


def test_polygons_equal_vectorize_on_the_written_rasters(tmp_path, small_window_bundle, scene):
    """Attributes too: mean_prob averages the stored probabilities, as vectorize reads them."""
    out = tmp_path / "out"
    infer(small_window_bundle, scene, out, window=32, block_windows=2, vectors=True,
          vector_layer="run1", quiet=True)
    ours = pyogrio.read_dataframe(out / "scene.polygons.gpkg", layer="run1")
    ref_path = tmp_path / "ref.gpkg"
    vectorize(out / "scene.class.tif", ref_path, PolygonOptions(layer="ref"),
              out / "scene.prob.tif", block_size=40, workers=1)
    ref = pyogrio.read_dataframe(ref_path, layer="ref")
    assert 0 not in set(ours["class_id"])  # background is left out by default
    assert len(ours) == len(ref) > 10

    def ordered(frame):
        key = shapely.get_coordinates(frame.geometry.representative_point().values)
        return frame.iloc[np.lexsort((key[:, 1], key[:, 0], frame["class_id"]))]

    a, b = ordered(ours), ordered(ref)
    assert shapely.equals(a.geometry.values, b.geometry.values).all()
    for name in ("class", "class_id", "pixels"):
        assert a[name].tolist() == b[name].tolist()
    np.testing.assert_allclose(a["area"], b["area"])
    np.testing.assert_allclose(a["mean_prob"], b["mean_prob"], atol=1e-6)
    assert a["mean_prob"].between(0, 1).all() and a["mean_prob"].notna().all()


def test_options_reach_the_polygons(tmp_path, small_window_bundle, scene):
    out = tmp_path / "out"
    [summary] = infer(small_window_bundle, scene, out, window=32, vectors=True,
                      vector_format="geojson", min_area=4,
                      vector_classes=("building", "crop"), probabilities=False, quiet=True)
    assert summary.outputs == ("scene.class.tif", "scene.polygons.geojson")
    path = out / "scene.polygons.geojson"
    info = pyogrio.read_info(path)
    assert CRS(info["crs"]) == CRS("EPSG:4326")
    frame = pyogrio.read_dataframe(path)
    assert set(frame["class"]) <= {"building", "crop"}
    assert (frame["pixels"] >= 4).all() and frame["mean_prob"].notna().all()
    classes, _ = read_classes(out / "scene.class.tif")
    ref, _ = whole_raster(classes, {1, 2})
    areas = shapely.area(ref)
    assert len(frame) == int((areas >= 4).sum())
    assert summary.counts["polygons"]["dropped_small"] == int((areas < 4).sum())


def test_mistakes_name_the_flag(tmp_path, small_window_bundle, bright_detector, scene, capsys):
    with pytest.raises(InputError, match="--vector-classes: unknown class 'roads'; classes are: "
                                         "0=background, 1=building"):
        infer(small_window_bundle, scene, tmp_path / "a", window=32, vectors=True,
              vector_classes=("roads",), quiet=True)
    with pytest.raises(InputError, match="--vectors: polygons are traced from a segmentation "
                                         "model's classes; .*det.pt is a detection model"):
        infer(bright_detector, scene, tmp_path / "b", vectors=True, quiet=True)
    with pytest.raises(InputError, match="--min-area: applies to the polygons of --vectors"):
        infer(small_window_bundle, scene, tmp_path / "c", window=32, min_area=10, quiet=True)
    assert not any((tmp_path / n).exists() and any((tmp_path / n).iterdir())
                   for n in ("a", "b", "c"))
    argv = ["infer", str(small_window_bundle), scene, "-o", str(tmp_path / "d"), "--vectors"]
    assert main([*argv, "--vector-format", "shp"]) == 2
    assert "--vector-format" in capsys.readouterr().err
    assert main([*argv, "--vector-layer", "gpkg_x"]) == 2
    assert "--vector-layer: 'gpkg_x' starts with a prefix" in capsys.readouterr().err
    assert main([*argv[:-1], "--simplify", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--simplify: applies to the polygons of --vectors" in err


def test_an_existing_polygon_file_needs_overwrite(tmp_path, small_window_bundle, scene):
    out = tmp_path / "out"
    infer(small_window_bundle, scene, out, window=32, vectors=True, quiet=True)
    for name in ("scene.class.tif", "scene.prob.tif"):
        (out / name).unlink()
    with pytest.raises(OutputExistsError, match="scene.polygons.gpkg: exists"):
        infer(small_window_bundle, scene, out, window=32, vectors=True, quiet=True)
    infer(small_window_bundle, scene, out, window=32, vectors=True, vector_layer="again",
          overwrite=True, quiet=True)
    # infer owns the file like its other outputs: the new run's layer replaces it
    assert pyogrio.list_layers(out / "scene.polygons.gpkg")[:, 0].tolist() == ["again"]


@pytest.mark.slow  # kill -9 and resume
def test_resume_after_a_crash_gives_the_uninterrupted_polygons(tmp_path, small_window_bundle):
    sample = make_sample(tmp_path / "s", size=(320, 256), seed=7)
    opts = {"window": 32, "block_windows": 1, "vectors": True, "vector_classes": EVERY_CLASS}
    infer(small_window_bundle, sample.rasters, tmp_path / "ref", quiet=True, **opts)
    out = tmp_path / "crash"
    code = ("from tests.inference.vector_helpers import register_band_bins; "
            "register_band_bins(); from geovision.inference import infer; "
            f"infer({str(small_window_bundle)!r}, {sample.rasters[0]!r}, {str(out)!r}, "
            f"quiet=True, **{opts!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    scratch = out / ".scene.partial"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(scratch.glob("*.done"))) < 4:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list(scratch.glob("*.done"))) >= 4, "the run ended before it was interrupted"
    assert list(scratch.glob("*.polygons.npz"))
    assert not (out / "scene.polygons.gpkg").exists()
    infer(small_window_bundle, sample.rasters, out, resume=True, quiet=True, **opts)
    assert_same_files(out, tmp_path / "ref")
    assert_polygons_of(out / "scene.polygons.gpkg", "seg", out / "scene.class.tif",
                       {0, 1, 2, 3, 4})


@pytest.mark.slow  # a Dask cluster
def test_dask_cluster_gives_the_local_polygons(tmp_path, small_window_bundle):
    distributed = pytest.importorskip("distributed")
    sample = make_sample(tmp_path / "s", size=(200, 130), seed=9)
    opts = {"window": 32, "block_windows": 2, "vectors": True, "vector_classes": EVERY_CLASS}
    infer(small_window_bundle, sample.rasters, tmp_path / "local", quiet=True, **opts)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.run(register_band_bins)  # the test's model, in each worker process
        infer(small_window_bundle, sample.rasters, tmp_path / "dask",
              scheduler=cluster.scheduler_address, quiet=True, **opts)
    assert_same_files(tmp_path / "dask", tmp_path / "local")


def assert_same_files(a: Path, b: Path) -> None:
    """Same class raster and the same features (geometry and attributes, in file order)."""
    np.testing.assert_array_equal(read_classes(a / "scene.class.tif")[0],
                                  read_classes(b / "scene.class.tif")[0])
    fa = pyogrio.read_dataframe(a / "scene.polygons.gpkg", layer="seg")
    fb = pyogrio.read_dataframe(b / "scene.polygons.gpkg", layer="seg")
    assert len(fa) == len(fb) > 0
    assert shapely.equals_exact(fa.geometry.values, fb.geometry.values, 0).all()
    for name in FIELDS:
        assert fa[name].tolist() == fb[name].tolist(), name
