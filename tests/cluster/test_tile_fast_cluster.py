"""The one-pass tiling prototype on a real cluster (spill pass) equals the classic local run."""

from __future__ import annotations

import numpy as np
import zarr

from geovision.tiling import TileOptions, tile
from geovision.tiling.fastpass import tile_fast


def test_tile_fast_on_cluster_equals_tile(dask_cluster, sample_two_crs, tmp_path):
    opts = TileOptions(class_field="kind", tile_size=64, block_size=128)
    local = tile(list(sample_two_crs.rasters), sample_two_crs.labels, tmp_path / "local.zarr",
                 opts, quiet=True)
    remote = tile_fast(list(sample_two_crs.rasters), sample_two_crs.labels,
                       tmp_path / "remote.zarr", opts, scheduler=dask_cluster.address,
                       quiet=True)
    a, b = zarr.open_group(str(local), mode="r"), zarr.open_group(str(remote), mode="r")
    assert sorted(a.array_keys()) == sorted(b.array_keys())
    for name in a.array_keys():
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
    skip = {"geovision"}
    assert {k: v for k, v in a.attrs.items() if k not in skip} == {
        k: v for k, v in b.attrs.items() if k not in skip}
