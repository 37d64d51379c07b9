"""Each example config trains on a small generated dataset and beats a trivial baseline."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_helpers import split_labels

from geovision.cli.main import main
from geovision.engine import evaluate
from geovision.models import load_bundle

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SESSION_FILES = ["config.yaml", "checkpoints/last.pt", "checkpoints/best.pt", "model.pt",
                 "metrics.jsonl", "train.log", "plots/curves.png"]


def _train(config, store, out, *overrides):
    args = ["-q", "train", str(CONFIGS / config), "--set", f"data.dataset={store}",
            "--set", f"output={out}", "--set", "data.workers=0", "--set", "train.warmup=0",
            "--set", "train.previews=2",
            *(x for o in overrides for x in ("--set", o))]
    assert main(args) == 0
    runs = list(Path(out).iterdir())
    assert len(runs) == 1
    session = runs[0]
    for name in SESSION_FILES:
        assert (session / name).is_file(), name
    assert list((session / "tensorboard").iterdir())
    assert list((session / "previews").glob("*.png"))
    history = [json.loads(line) for line in (session / "metrics.jsonl").read_text().splitlines()]
    return session, history


def test_segmentation_beats_majority_baseline(seg_store, tmp_path):
    session, history = _train(
        "segmentation.yaml", seg_store, tmp_path / "runs", "train.epochs=4",
        "data.batch_size=8", "model.params={base_channels: 8, depth: 2}",
        "train.optimizer.params.lr=0.01")
    mask = split_labels(seg_store, "mask")
    mask = mask[mask != 255]
    shares = np.bincount(mask) / mask.size
    baseline_miou = shares.max() / 5  # predicting the majority class everywhere
    best = max(h["val/miou"] for h in history)
    assert best > baseline_miou + 0.2, (best, baseline_miou)
    assert (session / "plots" / "confusion_matrix.png").is_file()
    assert {"val/iou/building", "val/pixel_accuracy", "train/loss", "lr"} <= set(history[-1])
    result = evaluate(session / "model.pt", seg_store, split="val", out_dir=tmp_path / "eval")
    assert result.metrics["val/miou"] == pytest.approx(best, abs=1e-6) or result.metrics[
        "val/miou"] > baseline_miou
    assert (tmp_path / "eval" / "metrics.json").is_file()
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()


def test_classification_beats_majority_baseline(cls_store, tmp_path):
    session, history = _train(
        "classification.yaml", cls_store, tmp_path / "runs", "train.epochs=3",
        "data.batch_size=16", "train.optimizer.params.lr=0.003")
    labels = split_labels(cls_store, "label")
    baseline = np.bincount(labels).max() / labels.size
    best = max(h["val/accuracy"] for h in history)
    assert best > baseline + 0.1, (best, baseline)
    assert "val/f1/water" in history[-1] and "val/f1_macro" in history[-1]
    bundle = load_bundle(session / "model.pt")
    assert bundle.task == "classification" and bundle.train["best"]["val/accuracy"] == best


def test_detection_finds_easy_rectangles(det_store, tmp_path):
    session, history = _train(
        "detection.yaml", det_store, tmp_path / "runs", "train.epochs=10",
        "data.batch_size=4", "model.params={width: 16, fpn_channels: 32}")
    best = max(h["val/map_50"] for h in history)
    assert best > 0.5, [h["val/map_50"] for h in history]
    assert "val/map" in history[-1]
    bundle = load_bundle(session / "model.pt")
    with torch.no_grad():
        out = bundle.model([torch.zeros(4, 64, 64)])
    assert set(out[0]) == {"boxes", "scores", "labels"}
