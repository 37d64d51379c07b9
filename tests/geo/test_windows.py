"""Window arithmetic: both origin rules, reflection, intersection, bounds."""

import itertools
import math

import numpy as np
import pytest
from affine import Affine
from hypothesis import given
from hypothesis import strategies as st

from geovision.geo.grid import Grid
from geovision.geo.windows import (
    PixelWindow,
    cell_origins,
    flush_origins,
    intersect,
    padded_origins,
    reflect_index,
    take_runs,
    tile_grid,
    window_bounds,
    window_stride,
)


@given(length=st.integers(1, 5000), size=st.integers(1, 600), stride=st.integers(1, 600))
def test_flush_origins_cover_every_pixel(length, size, stride):
    origins = flush_origins(length, size, stride)
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


def test_stride_from_overlap():
    assert window_stride(512, 0.25) == 384
    assert window_stride(256, 0.0) == 256
    assert window_stride(10, 0.99) == 1


@given(length=st.integers(1, 3000), window=st.integers(1, 600), stride_frac=st.floats(0.05, 1))
def test_windows_cover_every_pixel_with_a_regular_stride(length, window, stride_frac):
    stride = max(1, int(window * stride_frac))
    origins = padded_origins(length, window, stride)
    assert origins[0] == 0
    assert all(b - a == stride for a, b in itertools.pairwise(origins))
    assert origins[-1] + window >= length  # reaches the end
    assert len(origins) == 1 or origins[-2] + window < length  # no window to spare
    covered = np.zeros(length, bool)
    for o in origins:
        covered[o:o + window] = True
    assert covered.all()


@given(length=st.integers(1, 2000), window=st.integers(2, 300), stride=st.integers(1, 300))
def test_cell_windows_are_centred_on_cells(length, window, stride):
    origins = cell_origins(length, window, stride)
    assert len(origins) == -(-length // stride)
    for k, o in enumerate(origins):
        assert o + window // 2 == k * stride + stride // 2


@pytest.mark.parametrize("length", [1, 2, 3, 7, 64])
def test_reflect_index_matches_numpy_reflect(length):
    data = np.arange(length)
    pad = 3 * length + 5
    expected = np.pad(data, pad, mode="reflect") if length > 1 else np.zeros(length + 2 * pad)
    got = data[reflect_index(np.arange(-pad, length + pad), length)]
    np.testing.assert_array_equal(got, expected)


@given(length=st.integers(1, 40), start=st.integers(-120, 60), size=st.integers(1, 150),
       axis=st.integers(0, 2))
def test_take_runs_equals_a_gather_of_mirrored_indices(length, start, size, axis):
    shape = [3, 4, 5]
    shape[axis] = length
    data = np.arange(math.prod(shape), dtype=np.int32).reshape(shape)
    index = reflect_index(np.arange(start, start + size), length)
    got = take_runs(data, index, axis)
    np.testing.assert_array_equal(got, np.take(data, index, axis=axis))


@given(st.lists(st.integers(0, 9), min_size=1, max_size=40))
def test_take_runs_equals_a_gather_of_any_indices(index):
    data = np.arange(20).reshape(2, 10)
    np.testing.assert_array_equal(take_runs(data, np.array(index), 1),
                                  data[:, np.array(index)])


def test_intersect_and_coarsened_grid():
    a, b = PixelWindow(0, 0, 10, 10), PixelWindow(5, 8, 10, 10)
    assert intersect(a, b) == PixelWindow(5, 8, 5, 2)
    assert intersect(a, PixelWindow(10, 0, 3, 3)) is None
    grid = Grid(crs=None, transform=Affine(10.0, 0, 500_000.0, 0, -10.0, 5_300_000.0),
                width=200, height=130)
    cells = grid.coarsened(48)
    assert cells.shape == (3, 5) and cells.transform == grid.transform @ Affine.scale(48)
