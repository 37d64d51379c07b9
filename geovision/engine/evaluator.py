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
from geovision.models.bundle import load_bundle
from geovision.options import with_values
from geovision.options.evaluate import EvaluateOptions
from geovision.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Metrics of a model on a split, and the files written.

    Attributes:
        metrics: flat ``{name: value}`` (``test/miou``, ``test/iou/<class>``, ...).
        tiles: number of tiles evaluated.
        out_dir: where metrics.json and the figures were written (None: not written).
        confusion: confusion matrix as nested lists (rows truth), class tasks only.
    """

    metrics: dict[str, float]
    tiles: int
    out_dir: Path | None
    confusion: list[list[int]] | None = field(default=None, repr=False)


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
    ``metrics.json``, ``confusion_matrix.png`` (class tasks) and ``previews.png`` in
    ``out_dir`` when given.

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
    total, count = 0.0, 0
    shown: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    bar = progress_bar(total=len(loader), desc=f"evaluate {split}", unit="batch")
    for raw in loader:
        batch = task.to_device(raw, dev)
        with torch.no_grad():
            pred, loss = task.predict(bundle.model, batch, criterion)
        metrics.update(pred, batch.target)
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
    target_dir = Path(out_dir) if out_dir is not None else None
    if target_dir is not None:
        folder = Evaluation(target_dir)
        target_dir.mkdir(parents=True, exist_ok=True)
        if matrix is not None:
            plot_confusion(matrix, info.class_names, folder.confusion,
                           title=f"{split} ({len(ds)} tiles)")
        if shown[0]:
            plot_previews(info.task, *shown, classes=info.classes, bands=info.bands,
                          ignore_index=info.ignore_index, path=folder.previews)
        summary = {"model": str(Path(model).resolve()), "dataset": str(info.path),
                   "split": split, "tiles": len(ds), "task": info.task,
                   "classes": info.class_names,
                   "metrics": {k: (v if v == v else None) for k, v in out.items()},
                   "confusion_matrix": confusion}
        write_text(folder.metrics, json.dumps(summary, indent=2) + "\n")  # last: complete
        log.info("%s: %s", folder.metrics,
                 ", ".join(f"{k} {v:.4g}" for k, v in out.items() if k.count("/") == 1))
    return EvalResult(metrics=out, tiles=len(ds), out_dir=target_dir, confusion=confusion)
