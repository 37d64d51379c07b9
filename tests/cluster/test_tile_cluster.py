"""`tile()` on a real cluster (the spill pass) equals the independent reference and a local run."""

from __future__ import annotations

from geovision.tiling import TileOptions, tile
from tests.tiling.reference import assert_matches_reference
from tests.tiling.test_pass import assert_same_store


def test_tile_on_cluster_equals_reference(dask_cluster, sample_two_crs, tmp_path):
    opts = TileOptions(class_field="kind", tile_size=64, block_size=128)
    rasters = list(sample_two_crs.rasters)
    remote = tile(rasters, sample_two_crs.labels, tmp_path / "remote.zarr", opts,
                  scheduler=dask_cluster.address, quiet=True)
    assert_matches_reference(remote, rasters, sample_two_crs.labels, opts)
    local = tile(rasters, sample_two_crs.labels, tmp_path / "local.zarr", opts, quiet=True)
    assert_same_store(local, remote)
