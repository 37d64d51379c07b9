"""PNG figures of a score: confusion matrix, precision-recall, ROC and reliability diagrams.

matplotlib with the Agg backend (no display needed); each figure is written under a temporary
name and renamed, so a figure on disk is always complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def save_figure(fig: Any, path: Path) -> Path:
    """Write a figure as PNG atomically and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def plot_confusion(matrix: np.ndarray, names: Sequence[str], path: Path, *,
                   title: str) -> Path:
    """Confusion matrix, rows reference and columns predicted, coloured by row share.

    Each cell shows its share of the reference class (row) and its pixel count.
    """
    m = np.asarray(matrix, dtype=np.float64)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(names)
    side = max(4.0, 0.7 * n + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side), layout="constrained")
    im = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), list(names), rotation=45, ha="right")
    ax.set_yticks(range(n), list(names))
    ax.set_xlabel("predicted (map)")
    ax.set_ylabel("reference")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                color = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, f"{share[i, j]:.2f}\n{int(m[i, j])}", ha="center", va="center",
                        fontsize=7, color=color)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the reference class")
    return save_figure(fig, path)


def plot_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], labels: dict[str, str],
                path: Path, *, x_label: str, y_label: str, title: str,
                diagonal: bool = False) -> Path:
    """One line per class: ``curves[name] = (x, y)``, legend ``labels[name]``."""
    fig, ax = plt.subplots(figsize=(6.5, 5), layout="constrained")
    for i, (name, (x, y)) in enumerate(curves.items()):
        ax.plot(x, y, color=f"C{i % 10}", lw=1.6, label=labels.get(name, name))
    if diagonal:
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="chance")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no class with both positives and predictions", ha="center")
    return save_figure(fig, path)


def plot_reliability(lower: np.ndarray, upper: np.ndarray, confidence: np.ndarray,
                     accuracy: np.ndarray, count: np.ndarray, path: Path, *,
                     title: str) -> Path:
    """Reliability diagram: accuracy against confidence per bin, with the bins' counts."""
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]}, layout="constrained")
    width = upper - lower
    filled = count > 0
    ax.bar(lower[filled], accuracy[filled], width=width[filled], align="edge",
           edgecolor="C0", color="C0", alpha=0.6, label="accuracy")
    ax.plot(confidence[filled], accuracy[filled], "o", color="C1", ms=4,
            label="mean confidence")
    ax.plot([0, 1], [0, 1], color="0.4", ls="--", lw=1, label="perfect calibration")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    axc.bar(lower, count, width=width, align="edge", color="0.5")
    axc.set_xlim(0, 1)
    axc.set_xlabel("confidence (highest class probability)")
    axc.set_ylabel("samples")
    return save_figure(fig, path)
