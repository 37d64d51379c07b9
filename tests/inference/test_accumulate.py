"""Blending in place in pooled buffers, blocks and seams, against a whole-scene computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geovision.geo.windows import window_stride
from geovision.inference.accumulate import (
    Accumulator,
    BufferPool,
    Seams,
    ShareCache,
    finish_in_place,
    quantize_,
)
from geovision.inference.blend import axis_weights
from geovision.inference.layout import block_pieces, make_layout


def window_probs(r: int, c: int, k: int, w: int) -> np.ndarray:
    """A window's "model output": a softmax of noise, the same for the same origin."""
    logits = np.random.default_rng(r * 100_003 + c).standard_normal((k, w, w)) * 3
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


@pytest.mark.parametrize(("blend", "prob_dtype", "overlap", "per_block"), [
    ("gaussian", "uint8", 0.25, 2), ("gaussian", "float32", 0.5, 1), ("none", "uint8", 0.25, 3),
    ("linear", "float32", 0.25, 2)])
def test_blocks_and_seams_give_the_whole_scene_blend(blend, prob_dtype, overlap, per_block):
    shape, k, window = (300, 230), 5, 64  # windows pass the scene's edges
    stride = window_stride(window, overlap)
    layout = make_layout(*shape, window, stride, per_block=per_block)
    valid = np.random.default_rng(9).random(shape) > 0.1
    # the reference: every window weighted by its outer profile, divided by the summed weight
    wa = axis_weights(window, window - stride, blend)
    span = (layout.row_origins[-1] + window, layout.col_origins[-1] + window)
    acc, weight = np.zeros((k, *span)), np.zeros(span)
    for r in layout.row_origins:
        for c in layout.col_origins:
            acc[:, r:r + window, c:c + window] += (window_probs(r, c, k, window)
                                                   * np.outer(wa, wa))
            weight[r:r + window, c:c + window] += np.outer(wa, wa)
    ref = (acc / weight)[:, :shape[0], :shape[1]]

    pool = BufferPool()
    shares = ShareCache(layout.row_origins, layout.col_origins, window, stride, blend, "cpu")
    seams = Seams(prob_dtype)
    classes = np.full(shape, 77, dtype=np.uint8)
    probs = np.zeros((k, *shape), dtype=np.float32)
    for block in layout.blocks:
        reg = block.region
        rows = np.clip(np.arange(reg.row, reg.row + reg.height), 0, shape[0] - 1)
        cols = np.clip(np.arange(reg.col, reg.col + reg.width), 0, shape[1] - 1)
        acc_block = Accumulator(block, valid[np.ix_(rows, cols)],
                                block_pieces(block, layout.pieces), k, window, shares, pool,
                                prob_dtype=prob_dtype)
        wins = list(block.windows)
        for i in range(0, len(wins), 3):
            batch = torch.from_numpy(np.stack([window_probs(r, c, k, window)
                                               for r, c in wins[i:i + 3]]))
            acc_block.add(wins[i:i + 3], batch)
        done, parts = acc_block.finish()
        for part in parts:
            finished = seams.add(part)
            if finished is not None:
                done.append(finished)
        for f in done:
            pw = f.piece.window
            sl = (slice(pw.row, pw.row + pw.height), slice(pw.col, pw.col + pw.width))
            classes[sl] = f.classes[0]
            assert f.probs is not None
            probs[(slice(None), *sl)] = (f.probs / np.float32(254) if prob_dtype == "uint8"
                                         else f.probs)
    assert seams.waiting == 0 and pool.allocated == 1
    assert shares.distinct <= 9  # first, inner and last windows along each axis
    np.testing.assert_array_equal(classes == 255, ~valid)
    top2 = np.sort(ref, axis=0)[-2:]
    clear = valid & (top2[1] - top2[0] > 1e-4)
    np.testing.assert_array_equal(classes[clear], ref.argmax(0)[clear])
    if prob_dtype == "uint8":
        stored = np.rint(ref * 254)
        assert np.abs(probs[:, valid] * 254 - stored[:, valid]).max() <= 1
    else:
        assert np.isnan(probs[:, ~valid]).all()
        np.testing.assert_allclose(probs[:, valid], ref[:, valid], atol=2e-6)


def test_finish_picks_the_first_of_equal_maxima_like_argmax():
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 3, (5, 40, 50)).astype(np.float32) / 4  # many ties
    invalid = torch.from_numpy(rng.random((40, 50)) < 0.1)
    expected = np.argmax(probs, axis=0).astype(np.uint8)
    expected[invalid.numpy()] = 255
    classes, stored = finish_in_place(torch.from_numpy(probs.copy()), invalid, "uint8")
    np.testing.assert_array_equal(classes[0], expected)
    assert stored is not None and (stored[:, invalid.numpy()] == 255).all()
    np.testing.assert_array_equal(stored[:, ~invalid.numpy()],
                                  np.rint(probs * 254).astype(np.uint8)[:, ~invalid.numpy()])


def test_quantized_probabilities_round_half_to_even_like_numpy():
    # the float32s at and next to the 255 levels and their halfway points, the ends, values a
    # rounding error above 1, and a million random ones
    k = np.arange(255, dtype=np.float64)
    exact = np.concatenate([k / 254, (k + 0.5) / 254]).astype(np.float32)
    near = np.concatenate([np.nextafter(exact, np.float32(0)), exact,
                           np.nextafter(exact, np.float32(2))])
    p = np.concatenate([near, np.float32([0.0, 1.0, 1.0000001, 1.000001]),
                        np.random.default_rng(1).random(10**6, dtype=np.float32)])
    p = p[(p >= 0) & (p <= 1.000001)]  # blended probabilities: within float rounding of [0, 1]
    expected = np.rint(np.clip(p, 0, 1) * np.float32(254)).astype(np.uint8)
    got = quantize_(torch.from_numpy(p.copy())).numpy()
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


def test_pool_reuses_buffers_large_enough_and_zeroes_them():
    pool = BufferPool()
    a = pool.take((5, 100, 100))
    a.fill_(3.0)
    pool.give(a)
    b = pool.take((5, 90, 80))  # smaller: the same buffer, zeroed
    assert pool.allocated == 1 and float(b.abs().sum()) == 0.0
    c = pool.take((5, 100, 100))  # b is out: a second buffer
    assert pool.allocated == 2
    pool.give(b)
    pool.give(c)
    d = pool.take((5, 120, 100))  # larger than both: a third
    assert pool.allocated == 3 and d.shape == (5, 120, 100)
