"""`BandStats.of`: exact integer sums give the same bits as float64 sum + einsum."""

from __future__ import annotations

import numpy as np
import pytest

from geovision.tiling.stats import BandStats, tile_stats


def _reference(pixels, valid):
    """The formula of the first version: float64 sum, einsum of squares."""
    flat = pixels[:, valid]
    n = flat.shape[1]
    values = flat.astype(np.float64)
    total = values.sum(axis=1)
    mean = total / n
    m2 = np.maximum(np.einsum("ij,ij->i", values, values) - total * mean, 0.0)
    return mean, m2, flat.min(axis=1).astype(np.float64), flat.max(axis=1).astype(np.float64)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "bool"])
@pytest.mark.parametrize("shape", [(4, 256, 256), (3, 37, 45), (1, 512, 512)])
@pytest.mark.parametrize("masked", [False, True])
def test_of_is_bit_identical_to_float64_einsum(dtype, shape, masked):
    rng = np.random.default_rng(hash((dtype, shape, masked)) % 2**32)
    if dtype == "bool":
        pixels = rng.integers(0, 2, shape).astype(bool)
    else:
        info = np.iinfo(dtype)
        pixels = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    valid = rng.random(shape[1:]) > 0.3 if masked else np.ones(shape[1:], bool)
    got = BandStats.of(pixels, valid)
    mean, m2, lo, hi = _reference(pixels, valid)
    assert got.mean.tobytes() == mean.tobytes()
    assert got.m2.tobytes() == m2.tobytes()
    np.testing.assert_array_equal(got.min, lo)
    np.testing.assert_array_equal(got.max, hi)
    assert (got.count == valid.sum()).all()


def test_no_valid_pixel_is_empty():
    got = BandStats.of(np.ones((2, 4, 4), np.uint8), np.zeros((4, 4), bool))
    assert (got.count == 0).all() and np.isinf(got.min).all()


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
def test_tile_stats_equal_of_tile_by_tile(dtype):
    rng = np.random.default_rng(7)
    tiles = (rng.random((11, 3, 32, 32)) * 200).astype(dtype)
    valid = [np.ones((32, 32), bool) for _ in range(11)]
    valid[4] = rng.random((32, 32)) > 0.5
    valid[7][:] = False
    for masks in (valid, None):
        got = tile_stats(tiles, masks, group=3)
        for i in range(11):
            ref = BandStats.of(tiles[i], np.ones((32, 32), bool) if masks is None else masks[i])
            for name in ("count", "mean", "m2", "min", "max"):
                assert got[name][i].tobytes() == getattr(ref, name).tobytes(), (i, name)
