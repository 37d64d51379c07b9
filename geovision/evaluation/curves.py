"""Precision-recall, ROC and reliability curves, computed by torchmetrics, as PNG and JSON.

* Class probabilities (classification: one row per tile; segmentation: one per pixel):
  :class:`PixelSample` keeps a seeded uniform sample of bounded size over all batches, and
  :func:`write_class_curves` draws per-class precision-recall and one-vs-rest ROC curves
  (``MulticlassPrecisionRecallCurve``, ``MulticlassROC``, ``MulticlassAveragePrecision``,
  ``MulticlassAUROC``, all binned on a fixed grid of thresholds so that memory stays bounded)
  and a reliability diagram with the expected calibration error
  (``MulticlassCalibrationError``, L1 norm).
* Detections: :class:`~geovision.evaluation.matching.DetectionMatches` records which
  detection found an object, and :func:`write_detection_curves` draws each class's
  precision-recall curve over the detections' scores (``BinaryPrecisionRecallCurve``), with
  the objects no detection found counted as misses at every threshold.

Files written in the output folder: ``pr_curve.png``, ``roc_curve.png`` and
``reliability.png`` (class probabilities only), and ``curves.json``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geovision.evaluation.matching import DetectionMatches, as_numpy
from geovision.evaluation.plots import plot_curves, plot_reliability
from geovision.evaluation.report import plain, write_text_atomic

PR_PNG, ROC_PNG, RELIABILITY_PNG, CURVES_JSON = (
    "pr_curve.png", "roc_curve.png", "reliability.png", "curves.json")
#: Pixels (or tiles) kept for the curves of class probabilities by default.
MAX_SAMPLES = 200_000
#: Thresholds of the binned curves: 0, 0.01, ..., 1.
THRESHOLDS = 101
#: Bins of the reliability diagram and of the calibration error.
CALIBRATION_BINS = 15


class PixelSample:
    """A uniform random sample of (probabilities, target) rows, of bounded size.

    Each row gets a random key from a seeded generator, and the ``max_samples`` rows with the
    smallest keys seen so far are kept (reservoir sampling by random keys): a uniform sample
    of everything passed to :meth:`update`, the same for the same batches and seed.

    Args:
        num_classes: ``K``, the columns of the probabilities.
        max_samples: rows kept at most.
        ignore_index: target value left out (segmentation nodata), or None.
        seed: the sampler's seed.
    """

    def __init__(self, num_classes: int, *, max_samples: int = MAX_SAMPLES,
                 ignore_index: int | None = None, seed: int = 0) -> None:
        self.num_classes = num_classes
        self.max_samples = max_samples
        self.ignore_index = ignore_index
        self.rng = np.random.default_rng(seed)
        self.seen = 0
        self._probs = np.zeros((0, num_classes), dtype=np.float32)
        self._target = np.zeros(0, dtype=np.int64)
        self._keys = np.zeros(0)

    def update(self, probs: Any, target: Any) -> None:
        """Add a batch of probabilities and targets.

        Args:
            probs: ``(N, K)`` or ``(N, K, H, W)`` (numpy or torch, any device).
            target: ``(N,)`` or ``(N, H, W)`` class ids.
        """
        p = as_numpy(probs, np.float32)
        t = as_numpy(target, np.int64)
        if p.ndim > 2:
            p = np.moveaxis(p, 1, -1).reshape(-1, self.num_classes)
            t = t.reshape(-1)
        keys = self.rng.random(len(t))
        keep = np.ones(len(t), dtype=bool)
        if self.ignore_index is not None:
            keep &= t != self.ignore_index
        self.seen += int(keep.sum())
        if len(self._keys) >= self.max_samples:
            keep &= keys < self._keys.max()
        self._probs = np.concatenate([self._probs, p[keep]])
        self._target = np.concatenate([self._target, t[keep]])
        self._keys = np.concatenate([self._keys, keys[keep]])
        if len(self._keys) > self.max_samples:
            best = np.argpartition(self._keys, self.max_samples - 1)[:self.max_samples]
            best.sort()
            self._probs, self._target = self._probs[best], self._target[best]
            self._keys = self._keys[best]

    @property
    def probs(self) -> np.ndarray:
        """``(n, K)`` float32 probabilities of the rows kept."""
        return self._probs

    @property
    def target(self) -> np.ndarray:
        """``(n,)`` int64 targets of the rows kept."""
        return self._target


def _tensors(probs: Any, target: Any) -> tuple[Any, Any]:
    import torch

    return (torch.as_tensor(as_numpy(probs, np.float32)),
            torch.as_tensor(as_numpy(target, np.int64)))


def _array(value: Any) -> np.ndarray:
    """A binned curve's tensor (or per-class list of tensors) as one numpy array."""
    if isinstance(value, (list, tuple)):
        return np.stack([as_numpy(v) for v in value])
    return as_numpy(value)


def reliability_bins(probs: np.ndarray, target: np.ndarray, n_bins: int
                     ) -> dict[str, np.ndarray]:
    """The bins of a reliability diagram.

    Confidence (the highest probability) is cut into ``n_bins`` equal bins ``[i/n, (i+1)/n)``
    (1.0 in the last); each bin has its count, mean confidence and accuracy (the share of its
    rows whose most probable class is the target).
    """
    conf = probs.max(axis=1).astype(np.float64)
    correct = (probs.argmax(axis=1) == target).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {"lower": edges[:-1], "upper": edges[1:], "count": count,
            "confidence": mean_conf, "accuracy": accuracy}


def write_class_curves(probs: Any, target: Any, class_names: Sequence[str],
                       out_dir: str | Path, *, task: str, roc: bool = True,
                       thresholds: int = THRESHOLDS, n_bins: int = CALIBRATION_BINS,
                       seen: int | None = None) -> dict[str, Any]:
    """Per-class precision-recall and ROC curves and a reliability diagram of probabilities.

    One-vs-rest per class, computed by torchmetrics on ``thresholds`` evenly spaced
    thresholds from 0 to 1. A class without positives (or without negatives) in ``target``
    has no ROC curve, and its AUC and AP are null.

    Args:
        probs: ``(N, K)`` class probabilities (rows sum to 1).
        target: ``(N,)`` class ids.
        class_names: names of the ``K`` classes.
        out_dir: where the PNGs and curves.json go (created).
        task: ``classification`` or ``segmentation`` (recorded, used in titles).
        roc: draw ROC curves too.
        thresholds: thresholds of the binned curves.
        n_bins: bins of the reliability diagram and of the calibration error.
        seen: rows the sample was drawn from (recorded), when ``probs`` is a sample.

    Returns:
        The content of curves.json (``files`` lists the files written).
    """
    import torch
    from torchmetrics.classification import (
        MulticlassAUROC,
        MulticlassAveragePrecision,
        MulticlassCalibrationError,
        MulticlassPrecisionRecallCurve,
        MulticlassROC,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p, t = _tensors(probs, target)
    k = len(class_names)
    support = torch.bincount(t, minlength=k)[:k].numpy()
    n = len(t)
    defined = (support > 0) & (support < n)
    doc: dict[str, Any] = {
        "task": task, "samples": n, "sampled_from": seen if seen is not None else n,
        "thresholds": thresholds, "classes": {}, "files": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pr = MulticlassPrecisionRecallCurve(k, thresholds=thresholds)
        ap = MulticlassAveragePrecision(k, average=None, thresholds=thresholds)
        pr.update(p, t)
        ap.update(p, t)
        precision, recall, pr_thr = (_array(x) for x in pr.compute())
        ap_values = ap.compute().numpy()
        if roc:
            rc = MulticlassROC(k, thresholds=thresholds)
            auc = MulticlassAUROC(k, average=None, thresholds=thresholds)
            rc.update(p, t)
            auc.update(p, t)
            fpr, tpr, roc_thr = (_array(x) for x in rc.compute())
            auc_values = auc.compute().numpy()
        ece_metric = MulticlassCalibrationError(k, n_bins=n_bins, norm="l1")
        ece_metric.update(p, t)
        ece = float(ece_metric.compute())
    pr_lines, pr_labels, roc_lines, roc_labels = {}, {}, {}, {}
    for i, name in enumerate(class_names):
        entry: dict[str, Any] = {
            "support": int(support[i]),
            "average_precision": float(ap_values[i]) if support[i] > 0 else None,
            "pr": {"precision": precision[i], "recall": recall[i], "thresholds": pr_thr}}
        if support[i] > 0:
            pr_lines[name] = (recall[i], precision[i])
            pr_labels[name] = f"{name} (AP {ap_values[i]:.3f})"
        if roc:
            entry["auroc"] = float(auc_values[i]) if defined[i] else None
            entry["roc"] = {"fpr": fpr[i], "tpr": tpr[i], "thresholds": roc_thr}
            if defined[i]:
                roc_lines[name] = (fpr[i], tpr[i])
                roc_labels[name] = f"{name} (AUC {auc_values[i]:.3f})"
        doc["classes"][name] = entry
    bins = reliability_bins(p.numpy(), t.numpy(), n_bins)
    doc["calibration"] = {"ece": ece, "n_bins": n_bins, "norm": "l1",
                          "bins": [dict(zip(bins, vals, strict=True))
                                   for vals in zip(*bins.values(), strict=True)]}
    sample = f"{n:,} of {doc['sampled_from']:,}" if doc["sampled_from"] != n else f"{n:,}"
    plot_curves(pr_lines, pr_labels, out / PR_PNG, x_label="recall", y_label="precision",
                title=f"{task}: precision-recall ({sample} samples)")
    doc["files"].append(PR_PNG)
    if roc:
        plot_curves(roc_lines, roc_labels, out / ROC_PNG, x_label="false positive rate",
                    y_label="true positive rate", diagonal=True,
                    title=f"{task}: ROC, one-vs-rest ({sample} samples)")
        doc["files"].append(ROC_PNG)
    plot_reliability(bins["lower"], bins["upper"], bins["confidence"], bins["accuracy"],
                     bins["count"], out / RELIABILITY_PNG,
                     title=f"{task}: reliability (ECE {ece:.3f})")
    doc["files"].append(RELIABILITY_PNG)
    doc["files"].append(CURVES_JSON)
    write_text_atomic(out / CURVES_JSON, json.dumps(plain(doc)) + "\n")
    return doc


def detection_pr(scores: np.ndarray, matched: np.ndarray, objects: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """Precision-recall curve of one class's detections (torchmetrics), None without any.

    Each distinct score is a threshold. Scores are replaced by their rank in ``(0, 1]``
    (``BinaryPrecisionRecallCurve`` takes values outside [0, 1] for logits), which keeps the
    curve and lets the objects that no detection found enter as positives of score 0, below
    every threshold: recall is over all objects.

    Returns:
        ``(precision, recall, thresholds, average_precision)``: the curve's points (one more
        than thresholds, ending at precision 1, recall 0) with thresholds in the original
        score unit, and the step-wise area under it (``BinaryAveragePrecision``).
    """
    import torch
    from torchmetrics.classification import BinaryAveragePrecision, BinaryPrecisionRecallCurve

    if len(scores) == 0:
        return None
    levels = np.unique(scores)
    rank = (np.searchsorted(levels, scores) + 1) / len(levels)
    missed = max(int(objects) - int(matched.sum()), 0)
    preds = torch.as_tensor(np.concatenate([rank, np.zeros(missed)]), dtype=torch.float64)
    target = torch.as_tensor(np.concatenate([matched.astype(np.int64),
                                             np.ones(missed, np.int64)]))
    thr = torch.as_tensor((np.arange(len(levels)) + 1) / len(levels), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        curve = BinaryPrecisionRecallCurve(thresholds=thr)
        curve.update(preds, target)
        precision, recall, _ = curve.compute()
        ap = BinaryAveragePrecision(thresholds=thr)
        ap.update(preds, target)
        value = float(ap.compute()) if objects > 0 else float("nan")
    return precision.numpy(), recall.numpy(), levels, value


def write_detection_curves(matches: DetectionMatches, class_names: Sequence[str],
                           out_dir: str | Path, *, title: str = "detection"
                           ) -> dict[str, Any]:
    """Per-class precision-recall curves of matched detections: pr_curve.png, curves.json.

    Args:
        matches: the detections matched to the objects (class ids index ``class_names``).
        class_names: class names by id.
        out_dir: where the files go (created).
        title: the figure's title.

    Returns:
        The content of curves.json: per class ``objects``, ``detections``,
        ``average_precision`` (area under this curve; null without objects) and the curve.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores, labels, matched = matches.arrays()
    doc: dict[str, Any] = {"task": "detection", "iou_threshold": matches.iou_threshold,
                           "classes": {}, "files": [PR_PNG, CURVES_JSON]}
    lines, legend = {}, {}
    for k, name in enumerate(class_names):
        here = labels == k
        objects = int(matches.objects[k]) if k < len(matches.objects) else 0
        if objects == 0 and not here.any():
            continue
        found = detection_pr(scores[here], matched[here], objects)
        entry: dict[str, Any] = {"objects": objects, "detections": int(here.sum()),
                                 "average_precision": 0.0 if objects else None, "pr": None}
        if found is not None:
            precision, recall, thr, ap = found
            entry["average_precision"] = ap
            entry["pr"] = {"precision": precision, "recall": recall, "thresholds": thr}
            if objects:
                lines[name] = (recall, precision)
                legend[name] = f"{name} (AP@{matches.iou_threshold:g} {ap:.3f})"
        doc["classes"][name] = entry
    plot_curves(lines, legend, out / PR_PNG, x_label="recall", y_label="precision",
                title=f"{title}: precision-recall at IoU {matches.iou_threshold:g}")
    write_text_atomic(out / CURVES_JSON, json.dumps(plain(doc)) + "\n")
    return doc
