"""``run_demo()``: the whole journey on generated scenes, the library behind ``geovision demo``.

Generate a training sample and an unseen scene, tile a segmentation and a detection dataset,
train a small segmenter (U-Net) and a small detector (FCOS), predict the unseen scene with
both, score the predictions against its labels next to trivial baselines (what ``geovision
score`` does: score.json and report.md under ``score/``) and draw a quicklook.
Everything is sized to run in a few minutes on a 2-core CPU; ``quick`` is a tiny version of
every step, for tests.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geovision.atomic import write_text
from geovision.errors import OutputExistsError

#: Steps of the demo, each timed.
STEPS = 7
#: File written last: a demo folder holding it is a finished demo.
SUMMARY = "demo.json"
#: Everything the demo writes in its folder; ``overwrite`` removes these and nothing else.
WRITES = ("sample", "unseen", "segmentation.zarr", "detection.zarr", "runs", "predictions",
          "score", "preview.png", SUMMARY)


@dataclass(frozen=True)
class DemoSizes:
    """How big each step of the demo is.

    Attributes:
        scene: side in pixels of the training scene.
        unseen: side in pixels of the unseen scene.
        res: pixel size in metres (buildings are 60-160 m, so 5 m makes them 12-32 pixels).
        objects: buildings drawn on the training scene (detection targets).
        tile: tile side in pixels of both datasets.
        seg_epochs: segmenter epochs.
        seg_channels: U-Net ``base_channels``.
        seg_lr: segmenter learning rate (AdamW).
        det_epochs: detector epochs.
        det_width: FCOS backbone ``width``.
        det_lr: detector learning rate (AdamW).
        batch: tiles per batch of both.
    """

    scene: int
    unseen: int
    res: float
    objects: int
    tile: int
    seg_epochs: int
    seg_channels: int
    seg_lr: float
    det_epochs: int
    det_width: int
    det_lr: float
    batch: int


FULL = DemoSizes(scene=768, unseen=384, res=5.0, objects=120, tile=64, seg_epochs=8,
                 seg_channels=16, seg_lr=0.003, det_epochs=12, det_width=16, det_lr=0.003,
                 batch=8)
QUICK = DemoSizes(scene=192, unseen=128, res=5.0, objects=12, tile=32, seg_epochs=1,
                  seg_channels=8, seg_lr=0.003, det_epochs=1, det_width=8, det_lr=0.003,
                  batch=8)


def seg_config(dataset: Path, runs: Path, sizes: DemoSizes) -> dict[str, Any]:
    """The segmenter's training config (a dict of the shape of configs/segmentation.yaml)."""
    return {
        "name": "segmenter", "output": str(runs),
        "data": {"dataset": str(dataset), "batch_size": sizes.batch, "workers": 0},
        "model": {"name": "unet", "params": {"base_channels": sizes.seg_channels, "depth": 3}},
        "train": {"epochs": sizes.seg_epochs, "seed": 0, "device": "cpu",
                  "optimizer": {"name": "AdamW", "params": {"lr": sizes.seg_lr,
                                                            "weight_decay": 0.0001}},
                  "loss": {"name": "ce+dice", "dice_weight": 0.5},
                  "monitor": "val/miou", "previews": 4},
    }


def det_config(dataset: Path, runs: Path, sizes: DemoSizes) -> dict[str, Any]:
    """The detector's training config (a dict of the shape of configs/detection.yaml)."""
    return {
        "name": "detector", "output": str(runs),
        "data": {"dataset": str(dataset), "batch_size": sizes.batch, "workers": 0},
        "model": {"name": "fcos_tiny",
                  "params": {"width": sizes.det_width, "fpn_channels": 32,
                             "anchor_sizes": [8, 16, 32]}},
        "train": {"epochs": sizes.det_epochs, "seed": 0, "device": "cpu",
                  "optimizer": {"name": "AdamW", "params": {"lr": sizes.det_lr,
                                                            "weight_decay": 0.0001}},
                  "grad_clip": 10.0, "monitor": "val/map_50", "previews": 4},
    }


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


class _Clock:
    """Times named steps and reports each as it ends."""

    def __init__(self, echo: Callable[[str], Any]) -> None:
        self.echo = echo
        self.times: dict[str, float] = {}

    @contextmanager
    def step(self, name: str, what: str) -> Iterator[None]:
        self.echo(f"[{len(self.times) + 1}/{STEPS}] {what} ...")
        start = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - start, 2)
        self.echo(f"      done in {self.times[name]:.1f} s")


def run_demo(out_dir: str | Path = "demo-output", *, quick: bool = False,
             overwrite: bool = False, echo: Callable[[str], Any] = print,
             sizes: DemoSizes | None = None) -> dict[str, Any]:
    """Run the whole journey on generated scenes and report where everything is.

    Args:
        out_dir: folder of every output (samples, tile stores, runs, predictions, PNG).
        quick: a tiny version of every step (seconds, for tests); the metrics mean little.
        overwrite: replace an existing demo folder.
        echo: where progress and the final report go, line by line.
        sizes: the size of every step (default: :data:`QUICK` or :data:`FULL`).

    Returns:
        ``{"outputs": {name: path}, "metrics": {...}, "seconds": {step: s}}``, also written
        to ``<out_dir>/demo.json``.

    Raises:
        OutputExistsError: ``out_dir`` is not empty and ``overwrite`` is not set.
    """
    from geovision.engine import train
    from geovision.evaluation import ScoreOptions, score
    from geovision.formats import classes_from_json
    from geovision.inference import infer
    from geovision.inference.preview import write_preview
    from geovision.models.bundle import read_bundle
    from geovision.synthetic import make_sample
    from geovision.tiling import TileOptions, tile

    out = Path(out_dir)
    _clear(out, overwrite)
    sizes = sizes or (QUICK if quick else FULL)
    clock = _Clock(echo)
    start = time.perf_counter()

    with clock.step("generate", "generating a training scene and an unseen scene"):
        sample = make_sample(out / "sample", size=sizes.scene, res=sizes.res, seed=0,
                             n_objects=sizes.objects, nodata_corner=0.0)
        unseen = make_sample(out / "unseen", size=sizes.unseen, res=sizes.res, seed=1,
                             n_objects=max(1, sizes.objects * sizes.unseen**2
                                           // sizes.scene**2), stem="unseen")
    scene = unseen.rasters[0]
    with clock.step("tile", "tiling segmentation and detection datasets"), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Dataset has no geotransform")
        seg_tiles = tile(list(sample.rasters), sample.labels, out / "segmentation.zarr",
                         TileOptions(task="segmentation", class_field="kind",
                                     tile_size=sizes.tile, split="random",
                                     fractions=(0.8, 0.2, 0.0)), quiet=True)
        det_tiles = tile(list(sample.rasters), sample.objects, out / "detection.zarr",
                         TileOptions(task="detection", tile_size=sizes.tile, split="random",
                                     fractions=(0.8, 0.2, 0.0)), quiet=True)
    runs = out / "runs"
    with clock.step("train_segmenter", f"training a U-Net segmenter ({_epochs(sizes.seg_epochs)})"):
        seg = train(seg_config(seg_tiles, runs, sizes))
    with clock.step("train_detector", f"training an FCOS detector ({_epochs(sizes.det_epochs)})"):
        det = train(det_config(det_tiles, runs, sizes))
    seg_pred, det_pred = out / "predictions" / "segmentation", out / "predictions" / "detection"
    with clock.step("infer", "predicting the unseen scene with both models"):
        infer(seg.model, scene, seg_pred, quiet=True, overlap=0.25)
        infer(det.model, scene, det_pred, quiet=True, overlap=0.25, probabilities=False)
    classes = read_bundle(seg.model)["classes"]
    class_tif = seg_pred / "unseen.class.tif"
    boxes = det_pred / "unseen.detections.geojson"
    scores = out / "score"
    with clock.step("score", "scoring the predictions against the unseen scene's labels"):
        # what `geovision score` does; the detections' extent is the scene named in the
        # <stem>.json beside them
        seg_score = score(class_tif, unseen.labels, scores / "segmentation",
                          ScoreOptions(class_field="kind", bootstrap_block=32))
        det_score = score(boxes, unseen.objects, scores / "detection")
    preview = out / "preview.png"
    with clock.step("preview", "drawing the quicklook"):
        write_preview(preview, scene, classes=classes_from_json(classes), prediction=class_tif,
                      detections=boxes, labels=unseen.labels, class_field="kind",
                      truth_boxes=unseen.objects,
                      title="unseen scene: labels, segmentation, detections (yellow) and "
                            "objects (cyan)")
    total = round(time.perf_counter() - start, 2)
    outputs = {
        "training scene": sample.rasters[0], "unseen scene": scene,
        "segmentation tiles": str(seg_tiles), "detection tiles": str(det_tiles),
        "segmenter": str(seg.model), "detector": str(det.model),
        "segmentation": str(class_tif), "probabilities": str(seg_pred / "unseen.prob.tif"),
        "detections": str(boxes),
        "segmentation score": str(seg_score.outputs["score.json"]),
        "segmentation report": str(seg_score.outputs["report.md"]),
        "detection score": str(det_score.outputs["score.json"]),
        "detection report": str(det_score.outputs["report.md"]),
        "preview": str(preview),
    }
    report = {"outputs": {**outputs, "summary": str(out / SUMMARY)},
              "metrics": {"segmentation": segmentation_headline(seg_score.document),
                          "detection": detection_headline(det_score.document)},
              "seconds": {**clock.times, "total": total}}
    write_text(out / SUMMARY, json.dumps(report, indent=2))
    echo("")
    for line in _report_lines(report):
        echo(line)
    return report


def segmentation_headline(doc: dict[str, Any]) -> dict[str, Any]:
    """The figures the demo prints from a class raster's score.json, with its baseline."""
    base = doc["baseline"]
    return {"miou": doc["miou"], "pixel_accuracy": doc["overall_accuracy"],
            "kappa": doc["kappa"], "baseline": (base["rule"] or "").split(" (")[0],
            "baseline_miou": base["miou"], "baseline_pixel_accuracy": base["overall_accuracy"],
            "pixels": doc["pixels"]}


def detection_headline(doc: dict[str, Any]) -> dict[str, Any]:
    """The figures the demo prints from a detections score.json, with its baseline."""
    return {"map_50": doc["map_50"], "map": doc["map"], "precision": doc["precision"],
            "recall": doc["recall"], "baseline": doc["baseline"]["rule"],
            "baseline_map_50": doc["baseline"]["map_50"], "detections": doc["detections"],
            "objects": doc["objects"]}


def summary_line(name: str, scores: dict[str, Any]) -> str:
    """One line stating a headline score against its baseline."""
    def f(value: Any) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    if "miou" in scores:
        return (f"{name}: mIoU {f(scores['miou'])} (baseline {f(scores['baseline_miou'])}, "
                f"{scores['baseline']}), pixel accuracy {f(scores['pixel_accuracy'])}")
    return (f"{name}: mAP@0.5 {f(scores['map_50'])}, mAP@[.5:.95] {f(scores['map'])} "
            f"(baseline {f(scores['baseline_map_50'])}, {scores['baseline']}); "
            f"{scores['detections']} detections of {scores['objects']} objects")


def _clear(out: Path, overwrite: bool) -> None:
    """Make ``out`` an empty folder, removing only what an earlier demo wrote there.

    Raises:
        OutputExistsError: ``out`` holds files and ``overwrite`` is not set, or it holds
            files that the demo does not write (never removed).
    """
    found = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if found and not overwrite:
        raise OutputExistsError(f"{out}: exists and is not empty; use --overwrite to replace "
                                "an earlier demo or --out for another folder")
    foreign = [name for name in found if name not in WRITES]
    if foreign:
        raise OutputExistsError(f"{out}: holds {', '.join(foreign[:3])}, which the demo did "
                                "not write; give an empty or new folder with --out")
    for name in found:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _report_lines(report: dict[str, Any]) -> list[str]:
    """Where everything is, the scores against their baselines, the time of each step."""
    outputs, seconds = report["outputs"], report["seconds"]
    width = max(len(k) for k in outputs)
    steps = ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in seconds.items()
                      if k != "total")
    return [
        "Where everything is:",
        *(f"  {name:<{width}}  {path}" for name, path in outputs.items()),
        "",
        "On the unseen scene (never seen in training):",
        "  " + summary_line("segmenter", report["metrics"]["segmentation"]),
        "  " + summary_line("detector", report["metrics"]["detection"]),
        f"  (every figure, with 95% confidence intervals: "
        f"{Path(outputs['segmentation score']).parent.parent}/*/score.json and report.md)",
        "",
        f"Time: {steps}; total {seconds['total']:.0f} s",
    ]
