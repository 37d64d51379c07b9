"""`geovision tile` and `geovision info` as a user runs them: exit codes, messages, resume."""

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
import zarr
from affine import Affine

from geovision.synthetic import make_sample

GEOVISION = [sys.executable, "-m", "geovision"]


def run(*args, check=False):
    proc = subprocess.run([*GEOVISION, *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def test_tile_then_info_and_xarray(sample_two_crs, tmp_path):
    out = tmp_path / "t.zarr"
    raster_dir = Path(sample_two_crs.rasters[0]).parent
    proc = run("tile", raster_dir, sample_two_crs.labels, "--class-field", "kind",
               "--tile-size", "64", "-o", out, check=True)
    assert "task       segmentation" in proc.stdout
    info = run("info", out, check=True).stdout
    for needle in ("building", "water", "train", "EPSG:32633", "EPSG:3035", "blue"):
        assert needle in info
    code = f"import xarray as xr; print(xr.open_zarr({str(out)!r}))"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout
    assert "image      (tile, band, y, x) uint8" in shown
    assert "mask       (tile, y, x) uint8" in shown


def test_existing_output_is_an_error_then_overwrite(sample_utm, tmp_path):
    out = tmp_path / "o.zarr"
    args = ["tile", *sample_utm.rasters, sample_utm.labels, "--tile-size", "64", "-o", out, "-q"]
    run(*args, check=True)
    again = run(*args)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"geovision: error: {out}: exists; use --overwrite to replace it or --resume to "
        "finish an interrupted run"]
    run(*args, "--overwrite", check=True)
    assert run(*args, "--resume").returncode == 0  # complete already: nothing to do


def _no_rasters_dir(tmp_path):
    d = tmp_path / "nothing"
    d.mkdir()
    (d / "readme.txt").write_text("no rasters here")
    return d


def _raster(path, *, crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 5300000),
            count=4, size=128):
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=count,
                       dtype="uint8", crs=crs, transform=transform) as dst:
        dst.write(np.full((count, size, size), 7, dtype=np.uint8))
    return path


def _empty_labels(tmp_path):
    p = tmp_path / "empty.gpkg"
    gpd.GeoDataFrame({"kind": []}, geometry=[], crs="EPSG:4326").to_file(p)
    return p


def _far_labels(tmp_path):
    p = tmp_path / "far.geojson"
    gpd.GeoDataFrame({"kind": ["a"]}, geometry=[shapely.box(-70, -40, -69, -39)],
                     crs="EPSG:4326").to_file(p)
    return p


def _truncated(sample, tmp_path):
    data = Path(sample.rasters[0]).read_bytes()
    p = tmp_path / "cut.tif"
    p.write_bytes(data[: len(data) // 3])
    return p


BAD_INPUTS = {
    "missing raster": (lambda s, t: [t / "nope.tif", s.labels], "nope.tif: file not found"),
    "no rasters in dir": (lambda s, t: [_no_rasters_dir(t), s.labels],
                          "nothing: no rasters or STAC items in this folder"),
    "no crs": (lambda s, t: [_raster(t / "nocrs.tif", crs=None), s.labels],
               "nocrs.tif: raster has no CRS"),
    "rotated": (lambda s, t: [_raster(t / "rot.tif",
                                      transform=Affine(10, 2, 500000, 1, -10, 5300000)),
                              s.labels], "rot.tif: rotated, sheared, south-up or missing "
                                         "geotransform"),
    "labels miss rasters": (lambda s, t: [s.rasters[0], _far_labels(t)],
                            "far.geojson: no label feature overlaps any raster"),
    "empty labels": (lambda s, t: [s.rasters[0], _empty_labels(t)],
                     "empty.gpkg: the label file holds no features"),
    "bad class field": (lambda s, t: [s.rasters[0], s.labels, "--class-field", "klass"],
                        "field 'klass' not found; fields are: kind (use --class-field)"),
    "band counts differ": (lambda s, t: [s.rasters[0], _raster(t / "three.tif", count=3),
                                         s.labels], "rasters have different band counts"),
    "tile too large": (lambda s, t: [s.rasters[0], s.labels, "--tile-size", "4096"],
                       "--tile-size 4096 is larger than every raster"),
    "truncated": (lambda s, t: [_truncated(s, t), s.labels], "cut.tif: not a readable raster"),
    "missing labels": (lambda s, t: [s.rasters[0], t / "nolabels.shp"],
                       "nolabels.shp: file not found"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_line_exit_2_nothing_written(case, sample_utm, tmp_path):
    make_args, message = BAD_INPUTS[case]
    args = make_args(sample_utm, tmp_path)
    out = tmp_path / "out.zarr"
    proc = run("tile", *args, "-o", out)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("geovision: error: ")
    assert message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not Path(str(out) + ".partial").exists()


def test_debug_shows_traceback(sample_utm, tmp_path):
    proc = run("tile", tmp_path / "nope.tif", sample_utm.labels, "-o", tmp_path / "x.zarr",
               "--debug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


@pytest.mark.slow  # kill -9 and resume
def test_resume_after_kill_equals_uninterrupted(tmp_path):
    sample = make_sample(tmp_path / "big", size=768, seed=11)
    common = [*sample.rasters, sample.labels, "--class-field", "kind", "--tile-size", "32",
              "--workers", "1", "-q"]
    reference = tmp_path / "ref.zarr"
    run("tile", *common, "-o", reference, check=True)

    out = tmp_path / "killed.zarr"
    partial = Path(str(out) + ".partial")
    proc = subprocess.Popen([*GEOVISION, "tile", *map(str, common), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = partial / ".geovision-progress"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if progress.exists() and len(list(progress.glob("shard-*.done"))) >= 5:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(progress.glob("shard-*.done")))
    assert 5 <= done_before < 576 // 16
    # an interrupted run never looks complete
    assert not out.exists()
    info = run("info", partial)
    assert info.returncode == 2 and "unfinished tile store" in info.stderr
    assert run("tile", *common, "-o", out).returncode == 2  # partial left: needs --resume

    run("tile", *common, "-o", out, "--resume", check=True)
    assert out.exists() and not partial.exists()
    a, b = zarr.open_group(str(reference), mode="r"), zarr.open_group(str(out), mode="r")
    assert sorted(a.array_keys()) == sorted(b.array_keys())
    for name in a.array_keys():
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
    skip = {"geovision"}
    assert {k: v for k, v in a.attrs.items() if k not in skip} == {
        k: v for k, v in b.attrs.items() if k not in skip}
