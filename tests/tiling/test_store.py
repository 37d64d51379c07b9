"""The tile store's arrays: written from memory as zarr would write them."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from geovision.tiling.store import create_tile_arrays, write_tile_arrays


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize(("task", "dtype", "n"), [
    ("segmentation", "uint8", 10), ("classification", "uint16", 3), ("detection", "float32", 0),
])
def test_written_objects_equal_zarrs_own(tmp_path, task, dtype, n):
    rng = np.random.default_rng(0)
    plan = {"source": np.zeros(n, np.int16), "row": rng.integers(0, 99, n).astype(np.int32),
            "transform": rng.random((n, 6)), "split": np.ones(n, np.uint8)}
    kwargs = dict(n_tiles=n, bands=3, tile_size=16, dtype=dtype, task=task, shard=4,
                  fill_value=0, plan=plan)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for root in (ours, theirs):
        zarr.open_group(str(root), mode="w", zarr_format=3).attrs["kept"] = {"a": 1}
    write_tile_arrays(ours, **kwargs)
    create_tile_arrays(zarr.open_group(str(theirs), mode="r+"), **kwargs)
    a, b = _files(ours), _files(theirs)
    assert a.keys() == b.keys()
    for key in a:
        if key != "zarr.json":  # the group's own: zarr rewrites it, we leave it
            assert a[key] == b[key], key
    group = zarr.open_group(str(ours), mode="r")
    assert group.attrs["kept"] == {"a": 1}
    for name, values in plan.items():
        np.testing.assert_array_equal(group[name][...], values)
