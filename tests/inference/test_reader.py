"""Normalized model inputs: ``(x - mean) / std`` per band in float32, invalid pixels 0."""

from __future__ import annotations

import numpy as np
import pytest

from geovision.inference.reader import normalize


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "float32", "float64"])
def test_normalize_is_the_band_formula_in_float32_with_invalid_pixels_zero(dtype):
    rng = np.random.default_rng(1)
    data = (rng.random((3, 40, 50)) * 250).astype(dtype)
    valid = rng.random((40, 50)) > 0.2
    mean, std = [110.0, 90.5, 3.0], [50.0, 20.25, 0.5]
    out = normalize(data, valid, mean, std)
    expected = np.empty((3, 40, 50), np.float32)
    for b in range(3):  # one band at a time, each step in float32
        expected[b] = (data[b].astype(np.float32) - np.float32(mean[b])) / np.float32(std[b])
    expected[:, ~valid] = 0.0
    assert out.dtype == np.float32 and out.tobytes() == expected.tobytes()
