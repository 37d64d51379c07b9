"""PR, ROC and reliability curves of class probabilities and of matched detections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from geovision.evaluation.curves import (
    PixelSample,
    reliability_bins,
    write_class_curves,
    write_detection_curves,
)
from geovision.evaluation.matching import DetectionMatches

NAMES = ["background", "water", "forest"]


def one_hot(target: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[target]


def random_probs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    p = rng.random((n, k)).astype(np.float32)
    return p / p.sum(axis=1, keepdims=True)


def test_classification_curves_of_a_perfect_and_a_random_predictor(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, 3000)
    perfect = write_class_curves(one_hot(target, 3), target, NAMES, tmp_path / "perfect",
                                 task="classification")
    for name in NAMES:
        assert perfect["classes"][name]["auroc"] == pytest.approx(1.0)
        assert perfect["classes"][name]["average_precision"] == pytest.approx(1.0)
    assert perfect["calibration"]["ece"] == pytest.approx(0.0, abs=1e-6)
    chance = write_class_curves(random_probs(rng, 3000, 3), target, NAMES,
                                tmp_path / "random", task="classification")
    for name in NAMES:
        assert chance["classes"][name]["auroc"] == pytest.approx(0.5, abs=0.04)
        share = float((target == NAMES.index(name)).mean())
        assert chance["classes"][name]["average_precision"] == pytest.approx(share, abs=0.04)
    files = {p.name for p in (tmp_path / "random").iterdir()}
    assert files == {"pr_curve.png", "roc_curve.png", "reliability.png", "curves.json"}
    doc = json.loads((tmp_path / "random" / "curves.json").read_text())
    roc = doc["classes"]["water"]["roc"]
    assert len(roc["fpr"]) == len(roc["tpr"]) == 101
    assert doc["samples"] == 3000 and doc["thresholds"] == 101


def test_segmentation_curves_from_a_bounded_pixel_sample(tmp_path: Path) -> None:
    """Batches of (N, K, H, W) probabilities, ignore_index pixels left out, at most M kept."""
    rng = np.random.default_rng(1)
    sample = PixelSample(3, max_samples=5000, ignore_index=255, seed=0)
    total = 0
    for _ in range(4):
        target = rng.integers(0, 3, (2, 32, 32))
        target[:, :4] = 255
        probs = np.moveaxis(one_hot(np.where(target == 255, 0, target), 3), -1, 1)
        sample.update(torch.as_tensor(probs), torch.as_tensor(target))
        total += int((target != 255).sum())
    assert sample.seen == total and len(sample.target) == 5000
    assert 255 not in sample.target
    assert np.array_equal(sample.probs.argmax(axis=1), sample.target)
    doc = write_class_curves(sample.probs, sample.target, NAMES, tmp_path,
                             task="segmentation", seen=sample.seen)
    assert doc["sampled_from"] == total and doc["samples"] == 5000
    assert all(doc["classes"][n]["auroc"] == pytest.approx(1.0) for n in NAMES)
    assert (tmp_path / "roc_curve.png").stat().st_size > 0


def test_pixel_sample_is_uniform_and_seeded() -> None:
    values = np.arange(100_000)
    a, b = PixelSample(1, max_samples=2000, seed=3), PixelSample(1, max_samples=2000, seed=3)
    for chunk in np.array_split(values, 7):
        probs = np.ones((len(chunk), 1), np.float32)
        a.update(probs, chunk)
        b.update(probs, chunk)
    assert np.array_equal(a.target, b.target)
    assert abs(a.target.mean() - values.mean()) < 3 * values.std() / np.sqrt(2000)
    assert np.histogram(a.target, bins=4)[0].min() > 400


def test_reliability_bins_give_torchmetrics_ece() -> None:
    rng = np.random.default_rng(2)
    probs = random_probs(rng, 4000, 3) ** 2
    probs /= probs.sum(axis=1, keepdims=True)
    target = rng.integers(0, 3, 4000)
    bins = reliability_bins(probs, target, 15)
    share = bins["count"] / bins["count"].sum()
    ece = np.nansum(np.abs(bins["accuracy"] - bins["confidence"]) * share)
    expected = MulticlassCalibrationError(3, n_bins=15, norm="l1")(
        torch.as_tensor(probs), torch.as_tensor(target))
    assert ece == pytest.approx(float(expected), rel=1e-4)


def test_a_class_without_positives_has_no_auc(tmp_path: Path) -> None:
    target = np.array([0, 1, 0, 1] * 50)
    doc = write_class_curves(one_hot(target, 3), target, NAMES, tmp_path,
                             task="classification")
    assert doc["classes"]["forest"]["auroc"] is None
    assert doc["classes"]["forest"]["average_precision"] is None
    assert doc["classes"]["forest"]["support"] == 0


def test_detection_curves_from_matched_boxes(tmp_path: Path) -> None:
    """Two images: 3 of 4 objects found; one false detection with the highest score."""
    matches = DetectionMatches(2)
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    matches.update(np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float),
                   np.array([0.6, 0.95]), np.array([1, 1]), truth, np.array([1, 1]))
    matches.update(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float),
                   np.array([0.8, 0.7]), np.array([1, 1]), truth, np.array([1, 1]))
    doc = write_detection_curves(matches, ["background", "building"], tmp_path)
    pr = doc["classes"]["building"]["pr"]
    # thresholds 0.6, 0.7, 0.8, 0.95: detections kept and matched at each
    assert pr["thresholds"] == pytest.approx([0.6, 0.7, 0.8, 0.95])
    assert pr["precision"][:4] == pytest.approx([3 / 4, 2 / 3, 1 / 2, 0.0])
    assert pr["recall"][:4] == pytest.approx([3 / 4, 2 / 4, 1 / 4, 0.0])
    assert doc["classes"]["building"]["objects"] == 4
    # step-wise area: recall steps of 1/4 at precisions 1/2, 2/3 and 3/4
    assert doc["classes"]["building"]["average_precision"] == pytest.approx(
        (1 / 2 + 2 / 3 + 3 / 4) / 4, abs=1e-6)
    assert "background" not in doc["classes"]
    assert {p.name for p in tmp_path.iterdir()} == {"pr_curve.png", "curves.json"}
