import math

import numpy as np
from affine import Affine
from hypothesis import given
from hypothesis import strategies as st

from geovision.geo.windows import (
    PixelWindow,
    axis_origins,
    tile_grid,
    window_bounds,
)


@given(length=st.integers(1, 5000), size=st.integers(1, 600), stride=st.integers(1, 600))
def test_axis_origins_cover_every_pixel(length, size, stride):
    origins = axis_origins(length, size, stride)
    if length < size:
        assert origins == []
        return
    assert origins[0] == 0
    assert origins[-1] == length - size
    assert origins == sorted(set(origins))
    assert len(origins) == math.ceil((length - size) / stride) + 1
    covered = np.zeros(length, dtype=bool)
    for o in origins:
        covered[o:o + size] = True
    assert covered.all() or stride > size
    steps = np.diff(origins)
    assert (steps <= stride).all()
    assert (steps[:-1] == stride).all() if len(steps) > 1 else True


def test_tile_grid_is_row_major():
    grid = tile_grid(300, 200, 128, 128)
    assert [(w.row, w.col) for w in grid] == [(0, 0), (0, 72), (128, 0), (128, 72),
                                              (172, 0), (172, 72)]


def test_window_transform_maps_pixel_zero_to_origin():
    parent = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5300000.0)
    w = PixelWindow(row=37, col=81, height=64, width=64)
    assert w.transform(parent) @ (0, 0) == parent @ (81, 37)
    assert window_bounds(w, parent) == (500810.0, 5300000.0 - 1010.0, 501450.0, 5299630.0)
