"""``evaluate``: absent classes are null, the majority baseline, PR/ROC curves (#16, #17)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from geovision.cli.main import main
from geovision.data import TileDataset, read_info
from geovision.engine import evaluate
from geovision.engine.metrics import TaskMetrics
from geovision.evaluation.estimators import class_metrics
from geovision.evaluation.report import plain
from geovision.models import load_bundle, registry
from geovision.models.bundle import save_bundle
from tests.engine.engine_helpers import split_labels

NAMES = ["background", "water", "forest"]


def _random_bundle(store: Path, path: Path, name: str, params: dict[str, object]) -> Path:
    """A bundle of the store's classes and bands with fixed random weights."""
    info = read_info(store)
    torch.manual_seed(0)
    model = registry.build_model(info.task, name, in_channels=len(info.bands),
                                 num_classes=info.num_classes, params=params)
    return save_bundle(path, model=model, task=info.task, classes=info.classes,
                       ignore_index=info.ignore_index, bands=info.bands,
                       architecture={"name": name, "params": params},
                       normalization={"mean": info.mean, "std": info.std},
                       tile_size=info.tile_size, resolution=info.resolution,
                       pixel_size=info.pixel_size, train={"epochs": 0})


def test_a_class_absent_from_truth_and_prediction_is_null_not_zero() -> None:
    """IoU/F1 of 'forest' (never true, never predicted) is NaN; the means leave it out."""
    truth = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 0]])
    seg = TaskMetrics("segmentation", NAMES, 255, torch.device("cpu"))
    seg.update(pred[None], truth[None])
    values, matrix = seg.compute()
    assert matrix is not None
    keep = truth != 255
    t, p = truth[keep].numpy(), pred[keep].numpy()
    iou = [((t == c) & (p == c)).sum() / ((t == c) | (p == c)).sum() for c in (0, 1)]
    assert values["iou/background"] == pytest.approx(iou[0])
    assert values["iou/water"] == pytest.approx(iou[1])
    assert np.isnan(values["iou/forest"])
    assert values["miou"] == pytest.approx(np.mean(iou))
    # geovision score computes the same from the same confusion matrix: null, left out
    scored = class_metrics(matrix.numpy())
    assert plain(scored.iou.tolist()) == pytest.approx([iou[0], iou[1], None])
    assert json.loads(json.dumps(plain(values)))["iou/forest"] is None
    cls = TaskMetrics("classification", NAMES, 255, torch.device("cpu"))
    cls.update(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]))
    values, _ = cls.compute()
    assert np.isnan(values["f1/forest"])
    f1 = [2 * 2 / (2 * 2 + 1), 2 * 1 / (2 * 1 + 1)]
    assert values["f1/background"] == pytest.approx(f1[0])
    assert values["f1_macro"] == pytest.approx(np.mean(f1))


def test_evaluate_writes_pr_and_roc_curves_equal_to_counts(seg_store, tmp_path, capsys):
    bundle = _random_bundle(seg_store, tmp_path / "model.pt", "unet",
                            {"base_channels": 4, "depth": 2})
    out = tmp_path / "eval"
    assert main(["-q", "evaluate", str(bundle), str(seg_store), "--split", "val",
                 "-o", str(out), "--previews", "0"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for name in ("pr_curve.png", "roc_curve.png", "reliability.png", "curves.json",
                 "metrics.json"):
        assert (out / name).stat().st_size > 0, name
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["curves"] == ["pr_curve.png", "roc_curve.png", "reliability.png",
                             "curves.json"]

    # the probabilities of every valid val pixel, computed here
    info = read_info(seg_store)
    model = load_bundle(bundle).model.eval()
    ds = TileDataset(seg_store, "val", info=info, normalization=load_bundle(bundle).normalization)
    batch = ds.collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        probs = model(batch["image"].float()).softmax(1).numpy()
    mask = batch["mask"].numpy().astype(np.int64)
    valid = mask != info.ignore_index
    curves = json.loads((out / "curves.json").read_text())
    assert curves["samples"] == curves["sampled_from"] == int(valid.sum())
    # one point of each class's PR curve (threshold 0.3): precision and recall by counting
    for k, name in enumerate(info.class_names):
        entry = curves["classes"][name]
        if entry["support"] == 0:
            continue
        i = int(np.argmin(np.abs(np.asarray(entry["pr"]["thresholds"]) - 0.3)))
        hit = probs[:, k][valid] >= entry["pr"]["thresholds"][i]
        pos = mask[valid] == k
        assert entry["support"] == int(pos.sum())
        assert entry["pr"]["recall"][i] == pytest.approx((hit & pos).sum() / pos.sum(),
                                                         abs=1e-6)
        if hit.any():
            assert entry["pr"]["precision"][i] == pytest.approx(
                (hit & pos).sum() / hit.sum(), abs=1e-6)
        fpr = (hit & ~pos).sum() / (~pos).sum()
        j = int(np.argmin(np.abs(np.asarray(entry["roc"]["thresholds"]) - 0.3)))
        assert entry["roc"]["thresholds"][j] == pytest.approx(entry["pr"]["thresholds"][i])
        assert entry["roc"]["fpr"][j] == pytest.approx(fpr, abs=1e-6)

    # the majority baseline, beside the metrics, from the true masks
    truth = split_labels(seg_store, "mask")
    truth = truth[truth != info.ignore_index]
    counts = np.bincount(truth, minlength=info.num_classes)
    major = int(np.argmax(counts))
    share = counts[major] / counts.sum()
    present = int((counts > 0).sum())
    assert doc["baseline"]["rule"] == f"every pixel '{info.class_names[major]}'"
    assert doc["baseline"]["metrics"]["val/pixel_accuracy"] == pytest.approx(share)
    assert doc["baseline"]["metrics"]["val/miou"] == pytest.approx(share / present)
    assert printed["baseline"]["val/pixel_accuracy"] == pytest.approx(share)
    assert printed["baseline"]["rule"] == doc["baseline"]["rule"]
    assert "val/miou" in printed


@pytest.mark.slow  # a 384 px detection store and a detector's pass over its val split
def test_evaluate_writes_detection_pr_curves(det_store, tmp_path):
    bundle = _random_bundle(det_store, tmp_path / "model.pt", "fcos_tiny",
                            {"width": 16, "fpn_channels": 32})
    result = evaluate(bundle, det_store, split="val", out_dir=tmp_path / "eval", previews=0)
    files = {p.name for p in (tmp_path / "eval").iterdir()}
    assert {"pr_curve.png", "curves.json", "metrics.json"} <= files
    assert "roc_curve.png" not in files and result.baseline == {}
    curves = json.loads((tmp_path / "eval" / "curves.json").read_text())
    info = read_info(det_store)
    g = zarr.open_group(str(det_store), mode="r")
    val = set(info.splits["val"].tolist())
    labels = np.asarray(g["box_label"][...])[
        np.isin(np.asarray(g["box_tile"][...]), list(val))]
    for k, name in enumerate(info.class_names):
        if (labels == k).any():
            assert curves["classes"][name]["objects"] == int((labels == k).sum())


def test_train_warns_when_val_lacks_a_class(seg_store, caplog):
    from geovision.engine.trainer import warn_val_classes

    info = read_info(seg_store)
    train, val = split_labels(seg_store, "mask", 0), split_labels(seg_store, "mask", 1)
    expected = [n for i, n in enumerate(info.class_names)
                if (train == i).any() and not (val == i).any()]
    with caplog.at_level(logging.WARNING, logger="geovision"):
        assert warn_val_classes(info, "train", "val") == expected
    if expected:
        assert any(f"the val split has no {', '.join(expected)} (the train split has)"
                   in r.getMessage() for r in caplog.records)
