"""Matching detections to objects: which detection found which object.

The rule is COCO's (without crowd regions or area ranges): detections are taken in order of
decreasing score (ties in input order), and each takes, among the objects of its class that
no earlier detection took, the one it overlaps most, if their IoU reaches the threshold. A
detection that takes an object is a true positive; one that does not is a false positive; an
object that no detection takes is a false negative. Candidate pairs come from an STRtree, so
a scene with many boxes never builds the full IoU matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

#: IoU at which a detection matches an object for precision, recall and F1.
MATCH_IOU = 0.5


def as_numpy(value: Any, dtype: Any = None) -> np.ndarray:
    """A numpy copy of an array or a (CPU or GPU) torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def box_iou_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of overlapping boxes of two sets and their intersection over union.

    Args:
        a: ``(N, 4)`` xmin, ymin, xmax, ymax.
        b: ``(M, 4)`` the same.

    Returns:
        ``(i, j, iou)``: indices into ``a`` and ``b`` of every pair whose boxes share some
        area, and ``area(a_i & b_j) / area(a_i | b_j)`` of each (computed by shapely).
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    pa = shapely.box(a[:, 0], a[:, 1], a[:, 2], a[:, 3])
    pb = shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])
    i, j = shapely.STRtree(pb).query(pa, predicate="intersects")  # (index in a, index in b)
    inter = shapely.area(shapely.intersection(pa[i], pb[j]))
    union = shapely.area(pa[i]) + shapely.area(pb[j]) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return i, j, iou


def match_boxes(pred_boxes: np.ndarray, pred_scores: np.ndarray, pred_labels: np.ndarray,
                true_boxes: np.ndarray, true_labels: np.ndarray,
                iou_threshold: float = MATCH_IOU) -> np.ndarray:
    """Match the detections of one image (or scene) to its objects (see the module's rule).

    Args:
        pred_boxes: ``(N, 4)`` detections, xmin, ymin, xmax, ymax.
        pred_scores: ``(N,)`` their scores.
        pred_labels: ``(N,)`` their class ids.
        true_boxes: ``(M, 4)`` objects, same coordinates.
        true_labels: ``(M,)`` their class ids.
        iou_threshold: the lowest IoU of a match.

    Returns:
        ``(N,)`` the index of the object each detection took, -1 for none.
    """
    pb, tb = as_numpy(pred_boxes, np.float64).reshape(-1, 4), as_numpy(
        true_boxes, np.float64).reshape(-1, 4)
    ps, pl = as_numpy(pred_scores, np.float64).reshape(-1), as_numpy(pred_labels).reshape(-1)
    tl = as_numpy(true_labels).reshape(-1)
    taken = np.full(len(pb), -1, dtype=np.int64)
    i, j, iou = box_iou_pairs(pb, tb)
    keep = (pl[i] == tl[j]) & (iou >= iou_threshold)
    i, j, iou = i[keep], j[keep], iou[keep]
    candidates: dict[int, list[tuple[float, int]]] = {}
    for a, b, v in zip(i.tolist(), j.tolist(), iou.tolist(), strict=True):
        candidates.setdefault(a, []).append((v, b))
    used = np.zeros(len(tb), dtype=bool)
    for d in np.argsort(-ps, kind="stable").tolist():
        best, best_iou = -1, -1.0
        for v, b in candidates.get(d, ()):
            if not used[b] and v > best_iou:
                best, best_iou = b, v
        if best >= 0:
            used[best] = True
            taken[d] = best
    return taken


@dataclass
class DetectionMatches:
    """Matched detections accumulated over images: the input of detection PR curves.

    Args:
        num_classes: class ids are ``0 .. num_classes - 1``.
        iou_threshold: the lowest IoU of a match.

    Attributes:
        scores: the score of every detection seen.
        labels: its class id.
        matched: whether it took an object (a true positive).
        objects: objects seen per class.
    """

    num_classes: int
    iou_threshold: float = MATCH_IOU
    scores: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    matched: list[np.ndarray] = field(default_factory=list)
    objects: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.objects = np.zeros(self.num_classes, dtype=np.int64)

    def update(self, pred_boxes: Any, pred_scores: Any, pred_labels: Any, true_boxes: Any,
               true_labels: Any) -> np.ndarray:
        """Match one image's detections to its objects and keep the result.

        Arguments as in :func:`match_boxes` (numpy arrays or torch tensors).

        Returns:
            The index of the object each detection took, -1 for none.
        """
        taken = match_boxes(pred_boxes, pred_scores, pred_labels, true_boxes, true_labels,
                            self.iou_threshold)
        self.scores.append(as_numpy(pred_scores, np.float64).reshape(-1))
        self.labels.append(as_numpy(pred_labels, np.int64).reshape(-1))
        self.matched.append(taken >= 0)
        tl = as_numpy(true_labels, np.int64).reshape(-1)
        self.objects += np.bincount(tl, minlength=self.num_classes)[:self.num_classes]
        return taken

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores, class ids and matched flags of every detection seen, concatenated."""
        if not self.scores:
            return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool)
        return (np.concatenate(self.scores), np.concatenate(self.labels),
                np.concatenate(self.matched))

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True positives, false positives and false negatives per class."""
        _, labels, matched = self.arrays()
        k = self.num_classes
        tp = np.bincount(labels[matched], minlength=k)[:k]
        fp = np.bincount(labels[~matched], minlength=k)[:k]
        return tp, fp, self.objects - tp
