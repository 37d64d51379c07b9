"""Each task trains from its example config on a small dataset and beats a trivial baseline.

One tester runs every task (:class:`Case` says what differs): the session's files, the
monitored metric against the baseline of always predicting the majority, the per-class
metrics, and an evaluation of the bundle that agrees with validation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from geovision.cli.main import main
from geovision.engine import evaluate
from geovision.engine.tasks import for_task
from geovision.models import load_bundle
from geovision.tasks import get_task
from tests.engine.engine_helpers import split_labels

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SESSION_FILES = ["config.yaml", "checkpoints/last.pt", "checkpoints/best.pt", "model.pt",
                 "metrics.jsonl", "train.log", "plots/curves.png"]


def _majority_miou(store: Path) -> float:
    mask = split_labels(store, "mask")
    mask = mask[mask != 255]
    return float((np.bincount(mask) / mask.size).max() / 5)  # 5 classes, one predicted


def _majority_accuracy(store: Path) -> float:
    labels = split_labels(store, "label")
    return float(np.bincount(labels).max() / labels.size)


@dataclass(frozen=True)
class Case:
    """What differs between the tasks in this test."""

    store: str
    overrides: tuple[str, ...]
    baseline: Callable[[Path], float]
    margin: float
    keys: tuple[str, ...]
    confusion: bool


CASES = {
    "segmentation": Case(
        "seg_store", ("train.epochs=4", "data.batch_size=8",
                      "model.params={base_channels: 8, depth: 2}",
                      "train.optimizer.params.lr=0.01"),
        _majority_miou, 0.2, ("val/iou/building", "val/pixel_accuracy"), True),
    "classification": Case(
        "cls_store", ("train.epochs=3", "data.batch_size=16", "train.optimizer.params.lr=0.003"),
        _majority_accuracy, 0.1, ("val/f1/water", "val/f1_macro"), True),
    "detection": Case(
        "det_store", ("train.epochs=10", "data.batch_size=4",
                      "model.params={width: 16, fpn_channels: 32}"),
        lambda store: 0.0, 0.5, ("val/map",), False),
}


def _train(config: Path, store: Path, out: Path, overrides: tuple[str, ...],
           ) -> tuple[Path, list[dict[str, Any]]]:
    args = ["-q", "train", str(config), "--set", f"data.dataset={store}",
            "--set", f"output={out}", "--set", "data.workers=0", "--set", "train.warmup=0",
            "--set", "train.previews=2", *(x for o in overrides for x in ("--set", o))]
    assert main(args) == 0
    runs = list(out.iterdir())
    assert len(runs) == 1
    session = runs[0]
    for name in SESSION_FILES:
        assert (session / name).is_file(), name
    assert list((session / "tensorboard").iterdir())
    assert list((session / "previews").glob("*.png"))
    history = [json.loads(line) for line in (session / "metrics.jsonl").read_text().splitlines()]
    return session, history


@pytest.mark.parametrize("task", sorted(CASES))
def test_example_config_beats_the_majority_baseline(task, request, tmp_path):
    case = CASES[task]
    store = request.getfixturevalue(case.store)
    session, history = _train(CONFIGS / f"{task}.yaml", store, tmp_path / "runs",
                              case.overrides)
    monitor = for_task(task).monitor
    best = max(h[monitor] for h in history)
    baseline = case.baseline(store)
    assert best > baseline + case.margin, (best, baseline)
    assert {*case.keys, "train/loss", "lr"} <= set(history[-1])
    assert (session / "plots" / "confusion_matrix.png").is_file() == case.confusion
    bundle = load_bundle(session / "model.pt")
    assert bundle.task == task and bundle.train["best"][monitor] == best
    if not get_task(task).logits:  # a detector: torchvision detections per image
        with torch.no_grad():
            out = bundle.model([torch.zeros(4, 64, 64)])
        assert set(out[0]) == {"boxes", "scores", "labels"}
    result = evaluate(session / "model.pt", store, split="val", out_dir=tmp_path / "eval")
    assert result.metrics[monitor] == pytest.approx(best, abs=1e-6) or (
        result.metrics[monitor] > baseline)
    assert (tmp_path / "eval" / "metrics.json").is_file()

