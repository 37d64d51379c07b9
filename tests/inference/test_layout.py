"""Blocks and seams of a scene's windows."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geovision.geo.windows import window_stride
from geovision.inference.layout import axis_segments, make_layout


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
