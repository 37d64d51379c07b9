"""Blending weights: partition of unity and fall-off."""

from __future__ import annotations

import numpy as np
import pytest

from geovision.geo.windows import padded_origins, window_stride
from geovision.inference.blend import (
    axis_shares,
    axis_weight_sum,
    axis_weights,
    gaussian_sigma,
    window_share,
)
from geovision.options.infer import BLENDS


@pytest.mark.parametrize("mode", ["gaussian", "linear"])
@pytest.mark.parametrize("window", [64, 65, 512])
def test_profile_falls_off_from_centre_to_edges(mode, window):
    p = axis_weights(window, window // 4, mode)
    half = p[: (window + 1) // 2]
    assert np.all(np.diff(half) >= 0)  # rises to the centre
    np.testing.assert_allclose(p, p[::-1])  # symmetric
    assert p.max() <= 1 and p.min() > 0
    assert p[0] < 0.05 * p.max()


def test_none_is_flat():
    assert np.all(axis_weights(32, 8, "none") == 1)


def test_unknown_blend_is_refused():
    with pytest.raises(ValueError, match="unknown blend"):
        axis_weights(32, 8, "cosine")


@pytest.mark.parametrize("mode", BLENDS)
@pytest.mark.parametrize(("length", "window", "overlap"),
                         [(1000, 128, 0.25), (300, 64, 0.5), (50, 64, 0.25), (777, 100, 0.7)])
def test_shares_are_a_partition_of_unity(mode, length, window, overlap):
    stride = window_stride(window, overlap)
    origins = padded_origins(length, window, stride)
    shares = axis_shares(origins, axis_weights(window, window - stride, mode))
    total = np.zeros(origins[-1] + window)
    for o in origins:
        total[o:o + window] += shares[o]
    np.testing.assert_allclose(total, 1.0, rtol=1e-6)
    # and in 2-D, as outer products
    rows = padded_origins(length // 2 + 1, window, stride)
    rshares = axis_shares(rows, axis_weights(window, window - stride, mode))
    grid = np.zeros((rows[-1] + window, origins[-1] + window))
    for r in rows:
        for c in origins:
            grid[r:r + window, c:c + window] += window_share(rshares[r], shares[c])
    np.testing.assert_allclose(grid, 1.0, rtol=1e-5)


def test_weight_sum_is_the_sum_of_profiles():
    p = axis_weights(8, 4, "linear")
    total = axis_weight_sum([0, 4, 8], p)
    assert len(total) == 16
    np.testing.assert_allclose(total[4:8], p[4:] + p[:4])


def test_gaussian_edge_weights_vanish_against_the_neighbour():
    window, overlap = 512, 128
    p = axis_weights(window, overlap, "gaussian")
    d = overlap // 4  # outer quarter of the overlap
    # outgoing window at d px from its edge vs incoming window at overlap - d from its edge
    assert p[window - 1 - d] / p[overlap - 1 - d] < 1e-4
    assert gaussian_sigma(window, 0) == np.inf
