"""PNG figures of a run: learning curves, confusion matrix, validation previews."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap

from geovision.engine.tasks import PreviewStyle, for_task


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot_curves(history: list[dict[str, Any]], monitor: str, path: Path) -> Path:
    """Loss, the monitored metric and the learning rate per epoch."""
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, style in (("train/loss", "-o"), ("val/loss", "-s")):
        ys = [h.get(key) for h in history]
        if any(y is not None for y in ys):
            axes[0].plot(epochs, [np.nan if y is None else y for y in ys], style, label=key)
    axes[0].set_title("loss")
    axes[0].legend()
    ys = [h.get(monitor) for h in history]
    axes[1].plot(epochs, [np.nan if y is None else y for y in ys], "-o", color="C2")
    axes[1].set_title(monitor)
    axes[2].plot(epochs, [h.get("lr", np.nan) for h in history], "-o", color="C3")
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion(matrix: torch.Tensor | np.ndarray, names: list[str], path: Path,
                   title: str = "confusion matrix") -> Path:
    """Row-normalized confusion matrix (rows: truth, columns: prediction) with counts."""
    m = np.asarray(matrix, dtype=np.float64)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(names)
    size = max(4.0, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{int(m[i, j])}", ha="center", va="center",
                    fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def display_rgb(image: torch.Tensor, bands: list[dict[str, Any]]) -> np.ndarray:
    """An ``(H, W, 3)`` array in [0, 1] for display, from a normalized ``(C, H, W)`` image.

    Bands named red, green and blue are used when present, otherwise the first three (or the
    first band as grey); each is stretched between its 2nd and 98th percentiles.
    """
    names = [str(b.get("name", "")).lower() for b in bands]
    if all(n in names for n in ("red", "green", "blue")):
        idx = [names.index("red"), names.index("green"), names.index("blue")]
    elif image.shape[0] >= 3:
        idx = [0, 1, 2]
    else:
        idx = [0, 0, 0]
    rgb = image[idx].float().cpu().numpy().transpose(1, 2, 0)
    lo, hi = np.percentile(rgb, 2, axis=(0, 1)), np.percentile(rgb, 98, axis=(0, 1))
    return np.asarray(np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1))


def class_cmap(classes: list[dict[str, Any]]) -> ListedColormap:
    """A colormap indexed by class id, from the dataset's class colors."""
    return ListedColormap([c.get("color", "#000000") for c in classes])


def plot_previews(task: str, images: list[torch.Tensor], targets: list[Any],
                  preds: list[Any], classes: list[dict[str, Any]],
                  bands: list[dict[str, Any]], ignore_index: int, path: Path,
                  score_threshold: float = 0.5) -> Path:
    """Validation tiles with truth and prediction drawn over the imagery.

    Each task draws a tile on its own panels (:meth:`EngineTask.draw_preview`): a row of
    them per tile (segmentation: image | truth | prediction), or one panel per tile, four to
    a row (classification: the image titled ``truth -> prediction``; detection: truth boxes
    dashed white, predicted boxes with a score of at least ``score_threshold`` in class
    colours).
    """
    drawer = for_task(task)
    style = PreviewStyle(names=[str(c["name"]) for c in classes],
                         colors=[c.get("color", "#ff0000") for c in classes],
                         cmap=class_cmap(classes), ignore_index=ignore_index,
                         score_threshold=score_threshold)
    n, cols = len(images), drawer.panels
    per_row = 1 if cols > 1 else min(n, 4)
    rows = n if cols > 1 else -(-n // per_row)
    fig, axes = plt.subplots(rows, cols * per_row, figsize=(2.6 * cols * per_row, 2.6 * rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        rgb = display_rgb(images[i], bands)
        panels = list(axes[i]) if cols > 1 else [axes[i // per_row][i % per_row]]
        drawer.draw_preview(panels, rgb, targets[i], preds[i], style)
    return _save(fig, path)
