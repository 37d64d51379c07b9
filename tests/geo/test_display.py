"""The percentile stretch and the choice of RGB bands, shared by every quicklook."""

import numpy as np

from geovision.geo.display import rgb_by_name, stretch


def test_stretch_maps_the_2nd_and_98th_percentiles_of_valid_pixels_to_0_and_1():
    band = np.arange(101, dtype=np.float64).reshape(1, -1).repeat(2, axis=0)
    valid = np.ones_like(band, dtype=bool)
    valid[:, 50:] = False
    out = stretch(band, valid)
    lo, hi = np.percentile(band[valid], [2, 98])
    np.testing.assert_allclose(out[valid], np.clip((band[valid] - lo) / (hi - lo), 0, 1))
    assert (out[~valid] == 0).all()
    assert stretch(np.full((3, 3), 7.0)).max() == 0  # a constant band does not divide by 0
    assert stretch(band, np.zeros_like(valid)).max() == 0
    assert stretch(band.astype(np.float32)).dtype == np.float32


def test_rgb_bands_are_found_by_name():
    assert rgb_by_name(["Blue", "green", "RED", "nir"]) == [2, 1, 0]
    assert rgb_by_name(["b1", "b2", "b3"]) is None and rgb_by_name([None, "red"]) is None
