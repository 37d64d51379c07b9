"""PNG figures of a run: learning curves, confusion matrix, validation previews."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap

from geovision.atomic import atomic_path
from geovision.engine.tasks import PreviewStyle, for_task
from geovision.formats import BandInfo, ClassInfo
from geovision.geo.display import preview_bands, stretch


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
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


def display_rgb(image: torch.Tensor, bands: Sequence[BandInfo],
                rgb_bands: Sequence[int] | None = None) -> np.ndarray:
    """An ``(H, W, 3)`` array in [0, 1] for display, from a normalized ``(C, H, W)`` image.

    ``rgb_bands`` (1-based) are drawn as red, green, blue; None: the bands named so
    (red/green/blue, B04/B03/B02, ...), otherwise the first three (or the first band as
    grey); each is stretched (:func:`geovision.geo.display.stretch`).
    """
    idx = preview_bands([b.name for b in bands], rgb_bands)
    rgb = image[idx].float().cpu().numpy()
    return np.stack([stretch(channel, eps=1e-6) for channel in rgb], axis=-1)


def class_cmap(classes: Sequence[ClassInfo]) -> ListedColormap:
    """A colormap indexed by class id, from the dataset's class colors."""
    return ListedColormap([c.color or "#000000" for c in classes])


def plot_previews(task: str, images: list[torch.Tensor], targets: list[Any],
                  preds: list[Any], classes: Sequence[ClassInfo],
                  bands: Sequence[BandInfo], ignore_index: int, path: Path,
                  score_threshold: float = 0.5,
                  rgb_bands: Sequence[int] | None = None) -> Path:
    """Validation tiles with truth and prediction drawn over the imagery.

    Each task draws a tile on its own panels (:meth:`EngineTask.draw_preview`): a row of
    them per tile (segmentation: image | truth | prediction), or one panel per tile, four to
    a row (classification: the image titled ``truth -> prediction``; detection: truth boxes
    dashed white, predicted boxes with a score of at least ``score_threshold`` in class
    colours).
    """
    drawer = for_task(task)
    style = PreviewStyle(names=[c.name for c in classes],
                         colors=[c.color or "#ff0000" for c in classes],
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
        rgb = display_rgb(images[i], bands, rgb_bands)
        panels = list(axes[i]) if cols > 1 else [axes[i // per_row][i % per_row]]
        drawer.draw_preview(panels, rgb, targets[i], preds[i], style)
    return _save(fig, path)
