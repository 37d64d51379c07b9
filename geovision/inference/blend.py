"""Blending weights: how much each overlapping window counts at each pixel.

A window's weight is the outer product of its 1-D axis weights along rows and along columns.
Each pixel's weights are divided by their sum over every window covering it, so the blended
value is a convex combination of the windows' predictions (a partition of unity). Because the
axis weights are separable and the grid is regular, that sum is the product of two 1-D sums
(:func:`axis_weight_sum`), known before any window runs; each window's contribution can be
weighted and added on its own, in any order, by any block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from geovision.options.infer import BLENDS

#: Smallest weight: weights stay positive, so every covered pixel has a finite blend.
FLOOR = 1e-12


def gaussian_sigma(window: int, overlap_px: int) -> float:
    """Standard deviation of the gaussian weights: ``sqrt(o * (w - o)) / 6.5``.

    Where two windows overlap by ``o`` pixels, the ratio of the outgoing to the incoming
    window's gaussian weight at ``d`` pixels from the outgoing window's edge is
    ``exp(-(o - 2d)(w - o) / (2 sigma^2))``. With this sigma it is below ``1e-4`` over the outer
    quarter of the overlap, so the border pixels of a window, which a convolution sees with
    zero padding, barely count, and the interior of a blended scene matches one pass of a
    fully convolutional model over the whole scene. The switch happens over the middle of the
    overlap, about ``0.1 o`` pixels wide (10% to 90%).
    """
    if overlap_px <= 0:
        return math.inf
    return math.sqrt(overlap_px * (window - overlap_px)) / 6.5


def axis_weights(window: int, overlap_px: int, mode: str = "gaussian") -> np.ndarray:
    """1-D weights along a window side, highest at the centre, falling towards both edges.

    Args:
        window: window side in pixels.
        overlap_px: pixels shared by neighbouring windows (``window - stride``).
        mode: ``gaussian`` (see :func:`gaussian_sigma`), ``linear`` (a pyramid: distance to
            the nearer edge, from ``1 / window`` at the edge pixels to 1 at the centre) or
            ``none`` (every pixel 1: plain averaging).

    Returns:
        float64 weights of length ``window``, all at least :data:`FLOOR`, at most 1.

    Raises:
        ValueError: unknown mode.
    """
    x = np.arange(window, dtype=np.float64) + 0.5  # pixel centres
    if mode == "none":
        w = np.ones(window)
    elif mode == "linear":
        w = np.minimum(x, window - x) / (window / 2.0)
    elif mode == "gaussian":
        sigma = gaussian_sigma(window, overlap_px)
        w = np.ones(window) if math.isinf(sigma) else np.exp(
            -((x - window / 2.0) ** 2) / (2.0 * sigma**2))
    else:
        raise ValueError(f"unknown blend '{mode}'; choose one of {', '.join(BLENDS)}")
    return np.maximum(w, FLOOR)


def axis_weight_sum(origins: Sequence[int], weights: np.ndarray) -> np.ndarray:
    """Sum of the axis weights of every window along an axis, from the first origin on.

    Returns:
        Array of length ``origins[-1] + len(weights) - origins[0]``; element ``i`` is the
        summed weight at pixel ``origins[0] + i``.
    """
    size = len(weights)
    start = origins[0]
    total = np.zeros(origins[-1] + size - start, dtype=np.float64)
    for o in origins:
        total[o - start:o - start + size] += weights
    return total


def axis_shares(origins: Sequence[int], weights: np.ndarray) -> dict[int, np.ndarray]:
    """Each window's share of the summed weight along an axis, by origin.

    Returns:
        ``{origin: weights / summed weights over the window's pixels}`` as float32; for every
        pixel the shares of the windows covering it add up to 1.
    """
    total = axis_weight_sum(origins, weights)
    start, size = origins[0], len(weights)
    return {o: (weights / total[o - start:o - start + size]).astype(np.float32)
            for o in origins}


def window_share(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A window's 2-D share: the outer product of its row and column shares."""
    return np.outer(rows, cols)
