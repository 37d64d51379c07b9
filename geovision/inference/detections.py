"""Detections across windows: mapping boxes to the scene and merging them across seams.

A box is *cut* when it touches a side of its window that lies inside the scene: the object
probably goes on beyond the window, which saw only part of it. Merging is per class and
greedy: whole boxes first (highest score first), then cut boxes. A box is dropped when it
matches a box kept already, by intersection over union (``iou``) or, when either box is cut,
by intersection over the smaller box (``ios``), so a cut box gives way to the whole box
next door; two cut boxes of one object (too large for any window to see whole) are joined.
Their match is by intersection over the smaller box too, so an object more than about twice
as long as the overlap may stay in parts: choose an overlap wider than the largest objects.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

#: Columns of a detection table: xmin, ymin, xmax, ymax (scene pixels), score, label, cut.
COLUMNS = ("xmin", "ymin", "xmax", "ymax", "score", "label", "cut")


def empty() -> np.ndarray:
    """A detection table without rows."""
    return np.zeros((0, len(COLUMNS)), dtype=np.float64)


def to_scene(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, origin: tuple[int, int],
             window: int, height: int, width: int, tolerance: float = 1.0) -> np.ndarray:
    """Map a window's boxes to scene pixels, flag cut boxes and drop boxes off the scene.

    Args:
        boxes: ``(N, 4)`` xyxy in window pixels.
        scores: ``(N,)``.
        labels: ``(N,)`` class ids.
        origin: the window's (row, col) in the scene.
        window: window side.
        height: scene rows.
        width: scene columns.
        tolerance: pixels from a window side within which a box touches it.

    Returns:
        A detection table (see :data:`COLUMNS`); boxes whose centre lies outside the scene
        (seen in padding) are dropped, the others clipped to the scene.
    """
    if len(boxes) == 0:
        return empty()
    r0, c0 = origin
    b = boxes.astype(np.float64) + np.array([c0, r0, c0, r0], dtype=np.float64)
    cut = np.zeros(len(b), dtype=bool)
    if c0 > 0:
        cut |= b[:, 0] <= c0 + tolerance
    if c0 + window < width:
        cut |= b[:, 2] >= c0 + window - tolerance
    if r0 > 0:
        cut |= b[:, 1] <= r0 + tolerance
    if r0 + window < height:
        cut |= b[:, 3] >= r0 + window - tolerance
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    keep = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    keep &= (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    table = np.column_stack([b, scores, labels, cut]).astype(np.float64)
    return table[keep]


def pair_overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(intersection over union, intersection over the smaller box) of two xyxy boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0, 0.0
    inter = iw * ih
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter), inter / min(area_a, area_b)


@dataclass(frozen=True)
class MergeRule:
    """When two boxes of one class are the same object.

    Attributes:
        iou: intersection over union at or above which the later box is dropped.
        ios: intersection over the smaller box at or above which a cut box matches.
    """

    iou: float = 0.5
    ios: float = 0.5


def merge(table: np.ndarray, rule: MergeRule, cell: float = 256.0) -> np.ndarray:
    """Merge the detections of overlapping windows (see the module docstring).

    Args:
        table: detections of every window, scene pixels.
        rule: the matching thresholds.
        cell: side of the grid cells used to find nearby boxes quickly.

    Returns:
        The merged table, sorted by class then score (highest first); ``cut`` is kept.
    """
    if len(table) == 0:
        return empty()
    order = np.lexsort((-table[:, 4], table[:, 6], table[:, 5]))  # class, whole first, score
    kept: list[np.ndarray] = []
    grid: dict[tuple[int, int, int], list[int]] = defaultdict(list)

    def cells(box: np.ndarray) -> list[tuple[int, int, int]]:
        x0, y0, x1, y1 = (int(v // cell) for v in box[:4])
        return [(int(box[5]), i, j) for i in range(y0, y1 + 1) for j in range(x0, x1 + 1)]

    for idx in order:
        box = table[idx].copy()
        near = {k for c in cells(box) for k in grid.get(c, ())}
        matched = None
        for k in sorted(near):
            other = kept[k]
            iou, ios = pair_overlap(box, other)
            if iou >= rule.iou or ((box[6] or other[6]) and ios >= rule.ios):
                matched = k
                break
        if matched is None:
            kept.append(box)
            for c in cells(box):
                grid[c].append(len(kept) - 1)
            continue
        other = kept[matched]
        if box[6] and other[6]:  # two parts of an object no window saw whole: join them
            joined = other.copy()
            joined[0:2] = np.minimum(other[0:2], box[0:2])
            joined[2:4] = np.maximum(other[2:4], box[2:4])
            joined[4] = max(other[4], box[4])
            kept[matched] = joined
            for c in cells(joined):
                if matched not in grid[c]:
                    grid[c].append(matched)
    out = np.array(kept)
    return out[np.lexsort((-out[:, 4], out[:, 5]))]
