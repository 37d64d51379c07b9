"""What inference does differently per task: one :class:`InferenceTask` per task.

The scene-level machinery (layout, reading, batching, Dask, resuming) is shared; how the
model is called, how a block's window outputs are accumulated, how a scene is finished and
which files it writes is the task's, in ``<task>.py`` beside this module, found through
:data:`geovision.tasks.TASKS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from geovision.tasks import get_task

if TYPE_CHECKING:
    import torch

    from geovision.geo.raster import RasterInfo
    from geovision.inference.layout import Layout, Piece
    from geovision.inference.work import BlockData, SceneWork, Timings
    from geovision.models.bundle import Bundle
    from geovision.options.infer import InferOptions


class BlockAccumulator(ABC):
    """Collects the model outputs of one block's windows into the block's results.

    :meth:`add` and :meth:`results` run beside the model (torch, same device and threads);
    the results are stored by another thread or task.
    """

    @abstractmethod
    def add(self, origins: list[tuple[int, int]], output: Any) -> None:
        """Add the outputs of a batch of windows (scene origins ``(row, col)``)."""

    @abstractmethod
    def results(self) -> list[tuple[Path, np.ndarray]]:
        """The block's files to store (paths in the scratch directory, arrays)."""


class InferenceTask(ABC):
    """What inference does differently for a task.

    Attributes:
        name: the task.
        tta: test-time augmentation (flips and a rotation) applies to its predictions.
        cells: one window is centred on each stride cell (else windows overlap and blend).
    """

    name: str
    tta: bool = True
    cells: bool = False

    @abstractmethod
    def predict(self, model: torch.nn.Module, batch: np.ndarray, device: str,
                tta: bool = False) -> Any:
        """The model's output for a batch of normalized windows ``(N, C, H, W)``."""

    def output_problem(self, output: Any, window: int) -> str | None:
        """Why the model's output for one blank window is unusable, or None."""
        return None

    @abstractmethod
    def accumulator(self, work: SceneWork, data: BlockData,
                    pieces: list[Piece]) -> BlockAccumulator:
        """A :class:`BlockAccumulator` for one block."""

    def merge_blocks(self, work: SceneWork, layout: Layout) -> None:  # noqa: B027 - optional
        """Combine what neighbouring blocks stored (seams), once every block is done."""

    @abstractmethod
    def output_names(self, stem: str, options: InferOptions) -> list[str]:
        """File names of a scene's outputs in the output folder (the summary aside)."""

    def preview_layers(self, out: Path, stem: str) -> dict[str, Path]:
        """What a quicklook draws over the scene, from the scene's outputs.

        Returns:
            ``prediction`` (a class raster) and/or ``detections`` (a GeoJSON of boxes).
        """
        return {"prediction": out / f"{stem}.class.tif"}

    @abstractmethod
    def write(self, work: SceneWork, layout: Layout, bundle: Bundle, info: RasterInfo,
              out: Path, stem: str, timings: Timings) -> dict[str, Any]:
        """Write the scene's outputs from its scratch directory.

        Returns:
            Counts for the run summary (e.g. ``{"detections": 12}``).
        """


def for_task(name: str) -> InferenceTask:
    """The inference object of task ``name``.

    Raises:
        InputError: no such task.
    """
    return cast(InferenceTask, get_task(name).stage("inference"))
