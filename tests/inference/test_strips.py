"""Pieces gathered into full-width strips: every pixel from its piece, strips in order."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from geovision.geo.windows import PixelWindow
from geovision.inference.strips import Layer, StripAssembler


def test_pieces_in_any_order_give_the_raster_strip_by_strip():
    rng = np.random.default_rng(0)
    h, w = 300, 170
    raster = rng.integers(0, 250, (2, h, w)).astype(np.uint8)
    rows, cols = [0, 70, 190, 300], [0, 64, 170]
    pieces = [PixelWindow(r0, c0, r1 - r0, c1 - c0) for r0, r1 in pairwise(rows)
              for c0, c1 in pairwise(cols)]
    order = rng.permutation(len(pieces))
    strips = StripAssembler(h, w, 64, {"a": Layer(2, "uint8", 255), "b": Layer(1, "uint8", 7)})
    released = []
    for k in order:
        p = pieces[k]
        arrays = {"a": raster[:, p.row:p.row + p.height, p.col:p.col + p.width],
                  "b": None}  # a layer a piece does not give takes its fill value
        released += strips.add(p, arrays)
    assert [first for first, _ in released] == list(range(0, h, 64)) and strips.done
    np.testing.assert_array_equal(np.concatenate([s["a"] for _, s in released], 1), raster)
    assert all((s["b"] == 7).all() for _, s in released)
