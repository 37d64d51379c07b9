"""Window grids, reflection, blocks and seams."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geovision.inference.grid import (
    axis_segments,
    cell_origins,
    make_layout,
    reflect_index,
    window_origins,
    window_stride,
)


def test_stride_from_overlap():
    assert window_stride(512, 0.25) == 384
    assert window_stride(256, 0.0) == 256
    assert window_stride(10, 0.99) == 1


@given(length=st.integers(1, 3000), window=st.integers(1, 600), stride_frac=st.floats(0.05, 1))
def test_windows_cover_every_pixel_with_a_regular_stride(length, window, stride_frac):
    stride = max(1, int(window * stride_frac))
    origins = window_origins(length, window, stride)
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


def test_axis_segments_tile_the_axis_and_name_seams():
    segs = axis_segments(100, [(0, 60), (40, 110)])
    assert [(s.start, s.stop, s.owners) for s in segs] == [
        (0, 40, (0,)), (40, 60, (0, 1)), (60, 100, (1,))]


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 900), w=st.integers(1, 900), window=st.sampled_from([16, 32, 64]),
       overlap=st.sampled_from([0.0, 0.25, 0.5, 0.75]), per_block=st.integers(1, 4))
def test_layout_runs_each_window_once_and_pieces_tile_the_scene(h, w, window, overlap,
                                                                 per_block):
    stride = window_stride(window, overlap)
    layout = make_layout(h, w, window, stride, per_block=per_block)
    wins = [o for b in layout.blocks for o in b.windows]
    assert len(wins) == len(set(wins)) == layout.n_windows
    count = np.zeros((h, w), np.int32)
    for p in layout.pieces:
        count[p.window.slices] += 1
        for owner in p.owners:  # every owner's windows span the piece
            block = next(b for b in layout.blocks if b.index == owner)
            r = block.region
            assert r.row <= p.window.row and p.window.row + p.window.height <= r.row + r.height
            assert r.col <= p.window.col and p.window.col + p.window.width <= r.col + r.width
    assert (count == 1).all()
    # a pixel's covering windows all belong to the piece's owners
    for p in layout.pieces[:: max(1, len(layout.pieces) // 7)]:
        r, c = p.window.row, p.window.col
        owners = {b.index for b in layout.blocks for (wr, wc) in b.windows
                  if wr <= r < wr + window and wc <= c < wc + window}
        assert owners == set(p.owners)
