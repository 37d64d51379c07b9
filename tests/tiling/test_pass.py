"""`tile()`'s pass against an independent computation, both passes (ordered, spill), resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import xarray as xr
import zarr

from geovision.errors import InputError
from geovision.synthetic import make_sample
from geovision.tiling import TileOptions, api, tile
from tests.tiling.reference import assert_matches_reference


def assert_same_store(a, b):
    """Every array (values, dtype, chunks, codecs) and attribute but the creation stamp."""
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    assert sorted(ga.array_keys()) == sorted(gb.array_keys())
    for name in ga.array_keys():
        x, y = ga[name], gb[name]
        assert x.metadata.to_dict() == y.metadata.to_dict(), name
        np.testing.assert_array_equal(x[...], y[...], err_msg=name)
    skip = {"geovision"}
    assert {k: v for k, v in ga.attrs.items() if k not in skip} == {
        k: v for k, v in gb.attrs.items() if k not in skip}
    assert ga.attrs["geovision"]["format"] == gb.attrs["geovision"]["format"]
    assert not Path(str(b) + ".partial").exists()


def _both(tmp_path, rasters, labels, opts, passes=(None,)):
    """Build with each pass asked for; the first equals the reference, the others the first."""
    first = None
    for ordered in passes:
        new = tile(rasters, labels, tmp_path / f"new-{ordered}.zarr", opts, quiet=True,
                   ordered=ordered)
        if first is None:
            assert_matches_reference(new, rasters, labels, opts)
            first = new
        else:
            assert_same_store(first, new)
    return new


BOTH = (True, False)


@pytest.mark.parametrize("opts", [
    TileOptions(class_field="kind", tile_size=64, block_size=128),
    TileOptions(class_field="kind", tile_size=64, stride=48, block_size=64, shard=5, seed=3),
    TileOptions(task="classification", class_field="kind", tile_size=48, shard=7),
], ids=["segmentation", "overlap-border-drops", "classification"])
def test_two_crs_scene_equals_reference(sample_two_crs, tmp_path, opts):
    passes = (False,) if opts.stride else BOTH  # border drops possible: spill pass only
    _both(tmp_path, list(sample_two_crs.rasters), sample_two_crs.labels, opts, passes)


@pytest.mark.parametrize("opts", [
    TileOptions(class_field="kind", tile_size=64, min_valid=0.7, split="random", shard=3),
    TileOptions(class_field="kind", tile_size=96, stride=40, min_valid=0.0, shard=64),
    TileOptions(task="classification", class_field="kind", tile_size=64, bands=(3, 1)),
], ids=["min-valid", "shard-larger-than-dataset", "band-subset"])
def test_nodata_uint16_scene_equals_reference(sample_utm, tmp_path, opts):
    _both(tmp_path, sample_utm.rasters, sample_utm.labels, opts, BOTH)


def test_detection_equals_reference(sample_utm, tmp_path):
    new = _both(tmp_path, sample_utm.rasters, sample_utm.objects,
                TileOptions(task="detection", tile_size=64, min_valid=0.0, split="random"),
                BOTH)
    assert zarr.open_group(str(new), mode="r")["boxes"].shape[0] > 5


@pytest.mark.parametrize("dtype", ["float32", "int16"])
def test_other_dtypes_equal_reference(tmp_path, dtype):
    sample = make_sample(tmp_path / "s", size=(200, 136), dtype=dtype, seed=9)
    new = _both(tmp_path, sample.rasters, sample.labels,
                TileOptions(class_field="kind", tile_size=32, min_valid=0.3, shard=6), BOTH)
    assert xr.open_zarr(new)["image"].dtype == np.dtype(dtype)


def test_small_blocks_split_columns_and_still_equal(sample_utm, tmp_path, monkeypatch):
    # a budget of a few tiles forces blocks of several columns per row group
    monkeypatch.setattr(api, "BLOCK_BUDGET", 64 * 160 * 2 * 4)
    _both(tmp_path, sample_utm.rasters, sample_utm.labels,
          TileOptions(class_field="kind", tile_size=64, stride=32, min_valid=0.0, shard=4,
                      split="random"), BOTH)


def test_cut_last_row_equals_reference(tmp_path, monkeypatch):
    # rows of blocks whole (two 512-pixel storage blocks wide), the last one cut in two
    sample = make_sample(tmp_path / "s", size=(1024, 1024), seed=4)
    monkeypatch.setattr(api, "BLOCK_BUDGET", 512 * 1024 * 4)
    calls = []
    real = api.plan_blocks

    def spy(*args, **kwargs):
        calls.append(real(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(api, "plan_blocks", spy)
    _both(tmp_path, sample.rasters, sample.labels,
          TileOptions(class_field="kind", tile_size=128, min_valid=0.0, shard=5), BOTH)
    assert [b.window.col for b in calls[0]] == [0, 0, 512]


def test_no_tile_left_raises_and_leaves_nothing(sample_utm, tmp_path):
    empty = tmp_path / "empty.tif"
    with rasterio.open(sample_utm.rasters[0]) as src:
        profile, nodata = src.profile, src.nodata
        with rasterio.open(empty, "w", **profile) as dst:
            dst.write(np.full((src.count, src.height, src.width), nodata, dtype=src.dtypes[0]))
    out = tmp_path / "none.zarr"
    with pytest.raises(InputError, match="--min-valid"):
        tile([empty], sample_utm.labels, out,
                  TileOptions(class_field="kind", tile_size=64, min_valid=0.0), quiet=True)
    assert not out.exists() and not Path(str(out) + ".partial").exists()


def test_labels_outside_every_raster_fail_and_leave_nothing(sample_utm, tmp_path):
    far = gpd.GeoDataFrame({"kind": ["crop"]}, geometry=[shapely.box(100, 40, 101, 41)],
                           crs="EPSG:4326")
    path = tmp_path / "far.gpkg"
    far.to_file(path)
    out = tmp_path / "b.zarr"
    with pytest.raises(InputError) as err:
        tile(sample_utm.rasters, path, out, TileOptions(class_field="kind", tile_size=64),
             quiet=True)
    assert str(err.value).startswith(f"{path}: no label feature overlaps any raster (labels "
                                     "span (100.0, 40.0, 101.0, 41.0) in EPSG:4326; rasters: ")
    assert str(err.value).endswith("; check the files and their CRSs")
    assert not out.exists() and not Path(str(out) + ".partial").exists()


def test_resume_after_a_failed_shard_task(sample_utm, tmp_path, monkeypatch):
    opts = TileOptions(class_field="kind", tile_size=32, min_valid=0.2, shard=4)
    ref = tile(sample_utm.rasters, sample_utm.labels, tmp_path / "ref.zarr", opts, quiet=True,
               ordered=False)
    calls = {"n": 0}
    real = api.run_shards

    def flaky(job):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker lost")
        return real(job)

    monkeypatch.setattr(api, "run_shards", flaky)
    out = tmp_path / "new.zarr"
    with pytest.raises(RuntimeError, match="worker lost"):
        tile(sample_utm.rasters, sample_utm.labels, out, opts, workers=1, quiet=True,
                  ordered=False)
    monkeypatch.setattr(api, "run_shards", real)
    tile(sample_utm.rasters, sample_utm.labels, out, opts, resume=True, quiet=True,
              ordered=False)
    assert_same_store(ref, out)


_CHILD = """
import sys
from geovision.tiling import TileOptions, api
api.BLOCK_BUDGET = 32 * 96 * 4  # blocks of three tiles: many block tasks
api.SHARDS_PER_TASK = 1
api.tile(sys.argv[1:3], sys.argv[3], sys.argv[4],
         TileOptions(class_field="kind", tile_size=32, shard=2),
         workers=1, quiet=True, resume=sys.argv[5] == "1", ordered=sys.argv[6] == "ordered")
"""


@pytest.fixture(scope="module")
def kill_scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    sample = make_sample(root / "scene", size=256, crss=("EPSG:32633", "EPSG:3035"), seed=11)
    opts = TileOptions(class_field="kind", tile_size=32, shard=2)
    ref = tile(list(sample.rasters), sample.labels, root / "ref.zarr", opts, quiet=True)
    assert_matches_reference(ref, list(sample.rasters), sample.labels, opts)
    return sample, ref


@pytest.mark.parametrize(("kind", "pattern"), [
    ("ordered", "pass/group-*.npz"),
    pytest.param("spill", "pass/block-*.npz", marks=pytest.mark.slow),
    pytest.param("spill", "shard-*.done", marks=pytest.mark.slow),
])
def test_resume_after_kill_equals_uninterrupted(kill_scene, tmp_path, kind, pattern):
    sample, ref = kill_scene
    out = tmp_path / "killed.zarr"
    progress = Path(str(out) + ".partial") / ".geovision-progress"
    args = [sys.executable, "-c", _CHILD, *sample.rasters, sample.labels, str(out)]
    proc = subprocess.Popen([*args, "0", kind])
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(progress.glob(pattern))) >= 3:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    subprocess.run([*args, "1", kind], check=True)
    assert_same_store(ref, out)
