"""Tiling through `--scheduler` on a real cluster gives the local run's dataset."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import zarr

pytestmark = pytest.mark.slow  # a real Dask cluster: run by make test, not make test-fast


def _tile(sample, out, *extra):
    subprocess.run(
        [sys.executable, "-m", "geovision", "tile", *sample.rasters, sample.labels,
         "--class-field", "kind", "--tile-size", "64", "--block-size", "128", "-o", str(out),
         "-q", *extra], check=True, timeout=300)


def test_tile_on_cluster_equals_local(dask_cluster, sample_two_crs, tmp_path):
    local, remote = tmp_path / "local.zarr", tmp_path / "remote.zarr"
    _tile(sample_two_crs, local)
    _tile(sample_two_crs, remote, "--scheduler", dask_cluster.address)
    a, b = zarr.open_group(str(local), mode="r"), zarr.open_group(str(remote), mode="r")
    assert sorted(a.array_keys()) == sorted(b.array_keys())
    for name in a.array_keys():
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
    assert a.attrs["stats"] == b.attrs["stats"]


def test_unreachable_scheduler_is_a_clear_error(sample_two_crs, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "geovision", "tile", *sample_two_crs.rasters,
         sample_two_crs.labels, "-o", str(tmp_path / "x.zarr"), "--scheduler",
         "tcp://127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--scheduler tcp://127.0.0.1:9: cannot connect" in proc.stderr
