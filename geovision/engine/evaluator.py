"""``evaluate()``: metrics of a model bundle on a split of a tile dataset."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from geovision.atomic import write_text
from geovision.data import EpochSampler, TileDataset, read_info
from geovision.device import resolve_device
from geovision.engine.metrics import TaskMetrics
from geovision.engine.plots import plot_confusion, plot_previews
from geovision.engine.session import Evaluation
from geovision.engine.tasks import for_task
from geovision.errors import InputError
from geovision.evaluation.curves import (
    PixelSample,
    write_class_curves,
    write_detection_curves,
)
from geovision.evaluation.matching import DetectionMatches
from geovision.locks import check_free, output_lock
from geovision.models.bundle import load_bundle
from geovision.options import with_values
from geovision.options.evaluate import EvaluateOptions
from geovision.progress import progress_bar
from geovision.tasks import get_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Metrics of a model on a split, and the files written.

    Attributes:
        metrics: flat ``{name: value}`` (``test/miou``, ``test/iou/<class>``, ...).
        tiles: number of tiles evaluated.
        out_dir: where metrics.json and the figures were written (None: not written).
        confusion: confusion matrix as nested lists (rows truth), class tasks only.
        baseline: the same metrics of always predicting the split's most frequent class
            (class tasks; empty for detection), keys as in ``metrics``.
        baseline_rule: that rule in words (None without a baseline).
        curves: the content of curves.json (None: not written).
    """

    metrics: dict[str, float]
    tiles: int
    out_dir: Path | None
    confusion: list[list[int]] | None = field(default=None, repr=False)
    baseline: dict[str, float] = field(default_factory=dict)
    baseline_rule: str | None = None
    curves: dict[str, Any] | None = field(default=None, repr=False)


class _CurveData:
    """What the curves of an evaluation are drawn from, gathered batch by batch.

    Class tasks: a bounded uniform sample of (probabilities, truth) per pixel or tile
    (:class:`~geovision.evaluation.curves.PixelSample`); detection: every detection matched
    to the objects (:class:`~geovision.evaluation.matching.DetectionMatches`).
    """

    def __init__(self, task: str, num_classes: int, ignore_index: int, max_samples: int
                 ) -> None:
        self.task = task
        self.sample = (PixelSample(num_classes, max_samples=max_samples,
                                   ignore_index=ignore_index, seed=0)
                       if get_task(task).target != "boxes" else None)
        self.matches = DetectionMatches(num_classes) if get_task(task).target == "boxes" else None

    def update(self, pred: Any, scores: torch.Tensor | None, target: Any) -> None:
        if self.sample is not None and scores is not None:
            self.sample.update(scores, target)
        elif self.matches is not None:
            for p, t in zip(pred, target, strict=True):
                self.matches.update(p["boxes"], p["scores"], p["labels"], t["boxes"],
                                    t["labels"])

    def write(self, names: list[str], out_dir: Path, title: str) -> dict[str, Any] | None:
        if self.matches is not None:
            return write_detection_curves(self.matches, names, out_dir, title=title)
        if self.sample is None or len(self.sample.target) == 0:
            return None
        return write_class_curves(self.sample.probs, self.sample.target, names, out_dir,
                                  task=self.task, seen=self.sample.seen)


def _check_fit(bundle: Any, info: Any) -> None:
    if bundle.task != info.task:
        raise InputError(f"{info.path}: a {info.task} dataset cannot evaluate a "
                         f"{bundle.task} model")
    if len(bundle.bands) != len(info.bands):
        raise InputError(f"{info.path}: {len(info.bands)} bands, the model expects "
                         f"{len(bundle.bands)}")
    names = bundle.class_names
    if names != info.class_names:
        raise InputError(f"{info.path}: classes {info.class_names} differ from the model's "
                         f"{names}")


def evaluate(
    model: str | os.PathLike[str],
    dataset: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    options: EvaluateOptions | None = None,
    **kwargs: Any,
) -> EvalResult:
    """Evaluate a model bundle on one split of a tile dataset.

    The dataset is normalized with the bundle's statistics, as inference does. Writes
    ``metrics.json``, ``confusion_matrix.png`` (class tasks), ``previews.png`` and the curves
    in ``out_dir`` when given: ``pr_curve.png`` per class (every task), ``roc_curve.png``
    one-vs-rest with AUC and ``reliability.png`` with the expected calibration error
    (classification and segmentation, from a uniform sample of at most ``curve_samples``
    pixels or tiles), and their data in ``curves.json`` (see
    :mod:`geovision.evaluation.curves`). The metrics come with the majority-class baseline:
    the same metrics of predicting the split's most frequent true class everywhere.

    Args:
        model: the ``model.pt`` bundle.
        dataset: the tile store.
        out_dir: directory for the outputs (None: nothing written).
        options: split, batch size, workers, device, previews; see
            :class:`~geovision.options.evaluate.EvaluateOptions`.
        **kwargs: fields of the options, as keywords (``split="val"``).

    Returns:
        The metrics.

    Raises:
        InputError: the split is empty, an option is wrong, or the dataset does not fit the
            model.
        ModelFileError: the model file is not a valid bundle.
    """
    opts = with_values(options or EvaluateOptions(), kwargs, what="evaluate()")
    opts.check()
    if out_dir is None:
        return _evaluate(model, dataset, None, opts)
    check_free(out_dir)
    Evaluation(Path(out_dir)).check()  # before any work: a user's folder is never written
    with output_lock(out_dir, option="--output"):
        Evaluation(Path(out_dir)).check()
        return _evaluate(model, dataset, Path(out_dir), opts)


def _evaluate(model: str | os.PathLike[str], dataset: str | os.PathLike[str],
              target_dir: Path | None, opts: EvaluateOptions) -> EvalResult:
    """:func:`evaluate` once its output is checked and locked."""
    split, previews = opts.split, opts.previews
    dev = resolve_device(opts.device)
    bundle = load_bundle(model, device=dev)
    info = read_info(dataset)
    _check_fit(bundle, info)
    ds = TileDataset(info.path, split, info=info, normalization=bundle.normalization)
    if len(ds) == 0:
        raise InputError(f"{info.path}: split '{split}' holds no tile")
    loader = DataLoader(ds, batch_size=opts.batch_size, num_workers=opts.workers,
                        collate_fn=ds.collate, sampler=EpochSampler(len(ds), shuffle=False))
    metrics = TaskMetrics(info.task, info.class_names, info.ignore_index, dev)
    task = for_task(info.task)
    criterion = task.criterion(None, info, None, dev)
    curves = (_CurveData(info.task, info.num_classes, info.ignore_index, opts.curve_samples)
              if target_dir is not None and opts.curve_samples > 0 else None)
    total, count = 0.0, 0
    shown: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    bar = progress_bar(total=len(loader), desc=f"evaluate {split}", unit="batch")
    for raw in loader:
        batch = task.to_device(raw, dev)
        with torch.no_grad():
            pred, loss, scores = task.predict_scores(bundle.model, batch, criterion)
        metrics.update(pred, batch.target)
        if curves is not None:
            curves.update(pred, scores, batch.target)
        if loss is not None:
            total += float(loss) * batch.size
            count += batch.size
        for j in range(batch.size):
            if len(shown[0]) < previews:
                shown[0].append(batch.images[j].cpu())
                shown[1].append(batch.target[j])
                shown[2].append(pred[j])
        bar.update(1)
    bar.close()
    values, matrix = metrics.compute()
    out = {f"{split}/{k}": v for k, v in values.items()}
    if count:
        out[f"{split}/loss"] = total / count
    confusion = matrix.to(torch.int64).tolist() if matrix is not None else None
    baseline = ({f"{split}/{k}": v for k, v in task.baseline(matrix, info.class_names).items()}
                if matrix is not None else {})
    rule = None
    if baseline and matrix is not None:
        major = info.class_names[int(matrix.sum(dim=1).argmax())]
        rule = f"every {'pixel' if info.task == 'segmentation' else 'tile'} '{major}'"
    drawn = None
    if target_dir is not None:
        folder = Evaluation(target_dir)
        folder.claim()
        if matrix is not None:
            plot_confusion(matrix, info.class_names, folder.confusion,
                           title=f"{split} ({len(ds)} tiles)")
        if shown[0]:
            plot_previews(info.task, *shown, classes=info.classes, bands=info.bands,
                          ignore_index=info.ignore_index, path=folder.previews,
                          rgb_bands=opts.preview_bands)
        if curves is not None:
            drawn = curves.write(info.class_names, target_dir, f"{split} ({len(ds)} tiles)")
        summary = {"model": str(Path(model).resolve()), "dataset": str(info.path),
                   "split": split, "tiles": len(ds), "task": info.task,
                   "classes": info.class_names,
                   "metrics": {k: (v if v == v else None) for k, v in out.items()},
                   "baseline": {"rule": rule,
                                "metrics": {k: (v if v == v else None)
                                            for k, v in baseline.items()}},
                   "curves": drawn["files"] if drawn is not None else [],
                   "confusion_matrix": confusion}
        write_text(folder.metrics, json.dumps(summary, indent=2) + "\n")  # last: complete
        log.info("%s: %s", folder.metrics, ", ".join(
            f"{k} {v:.4g}" + (f" (baseline {baseline[k]:.4g})" if k in baseline else "")
            for k, v in out.items() if k.count("/") == 1))
    return EvalResult(metrics=out, tiles=len(ds), out_dir=target_dir, confusion=confusion,
                      baseline=baseline, baseline_rule=rule, curves=drawn)
