"""What inference does differently per task: one :class:`InferenceTask` per task.

The scene-level machinery (layout, reading, batching, threads, Dask, resuming) is shared; how
the model is called, how a block's window outputs are accumulated, what a finished block hands
to the scene's outputs (its :class:`SceneSink`) and which files it writes is the task's, in
``<task>.py`` beside this module, found through :data:`geovision.tasks.TASKS`.

A block's results go two ways (:class:`BlockResult`): its files into the scene's scratch
folder (so that ``--resume`` and a cluster's finishing task find them), and its payload, in
memory, into the scene's sink. A block done by an earlier run or by a Dask worker gives the
sink the payload :meth:`InferenceTask.load_block` reads back from its files: the outputs are
made by one code path wherever the blocks ran.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from geovision.tasks import get_task

if TYPE_CHECKING:
    import torch

    from geovision.inference.layout import Block, Layout, Piece
    from geovision.inference.spare import NoSpareTime, SpareTime
    from geovision.inference.work import BlockData, SceneWork, Timings
    from geovision.models.bundle import Bundle
    from geovision.options.infer import InferOptions


@dataclass
class BlockResult:
    """What a finished block gives: files to store and a payload for the scene's sink.

    Attributes:
        files: paths in the scratch directory and their arrays (stored before the block's
            marker).
        payload: what :meth:`SceneSink.add` takes (the same value
            :meth:`InferenceTask.load_block` reads back from ``files``).
    """

    files: list[tuple[Path, np.ndarray]] = field(default_factory=list)
    payload: Any = None


class BlockAccumulator(ABC):
    """Collects the model outputs of one block's windows into the block's results.

    :meth:`add` and :meth:`results` run on the model's thread and device.
    """

    @abstractmethod
    def add(self, origins: list[tuple[int, int]], output: Any) -> None:
        """Add the outputs of a batch of windows (scene origins ``(row, col)``)."""

    @abstractmethod
    def results(self) -> BlockResult:
        """The block's files to store and its payload (the accumulator is spent)."""


class SceneSink(ABC):
    """A scene's outputs, made from its blocks' payloads as they come, in block order."""

    @abstractmethod
    def add(self, block: Block, payload: Any) -> None:
        """Take a finished block's payload (blocks come in the layout's order)."""

    @abstractmethod
    def close(self) -> dict[str, Any]:
        """Finish the output files once every block was added.

        Returns:
            Counts for the run summary (e.g. ``{"detections": 12}``).
        """

    def discard(self) -> None:  # noqa: B027 - optional
        """Give up: remove what was written so far (the run failed)."""


class _WrittenAtEnd(SceneSink):
    """A sink that ignores payloads and writes everything from the scratch folder at the end."""

    def __init__(self, task: WrittenAtEndTask, work: SceneWork, layout: Layout, bundle: Bundle,
                 out: Path, stem: str, timings: Timings) -> None:
        self.task, self.work, self.layout, self.bundle = task, work, layout, bundle
        self.out, self.stem, self.timings = out, stem, timings

    def add(self, block: Block, payload: Any) -> None:
        """Nothing: the block's files are in the scratch folder."""

    def close(self) -> dict[str, Any]:
        """The task's :meth:`WrittenAtEndTask.write`."""
        return self.task.write(self.work, self.layout, self.bundle, self.out, self.stem,
                               self.timings)


class InferenceTask(ABC):
    """What inference does differently for a task.

    Attributes:
        name: the task.
        tta: test-time augmentation (flips and a rotation) applies to its predictions.
        cells: one window is centred on each stride cell (else windows overlap and blend).
        skips_empty: a window without a valid pixel is not run through the model (its
            outputs could only reach pixels that are nodata in every output).
    """

    name: str
    tta: bool = True
    cells: bool = False
    skips_empty: bool = False

    @abstractmethod
    def predict(self, model: torch.nn.Module, x: torch.Tensor, tta: bool = False) -> Any:
        """The model's output for a batch of normalized windows ``(N, C, H, W)``.

        ``x`` is on the model's device, in a buffer reused for the next batch.
        """

    def output_problem(self, output: Any, window: int) -> str | None:
        """Why the model's output for one blank window is unusable, or None."""
        return None

    @abstractmethod
    def accumulator(self, work: SceneWork, data: BlockData,
                    pieces: list[Piece]) -> BlockAccumulator:
        """A :class:`BlockAccumulator` for one block."""

    def load_block(self, work: SceneWork, layout: Layout, block: Block) -> Any:
        """A stored block's payload, read back from the scratch folder (None: not needed)."""
        return None

    @abstractmethod
    def sink(self, work: SceneWork, layout: Layout, bundle: Bundle, out: Path, stem: str,
             timings: Timings, threads: int = 1,
             spare: SpareTime | NoSpareTime | None = None) -> SceneSink:
        """The scene's outputs, fed block by block.

        ``threads``: cores it may encode on; ``spare``: where it may encode ahead, in the
        cores' spare time. A task whose outputs are small writes them at the end instead
        (:class:`WrittenAtEndTask`).
        """

    @abstractmethod
    def output_names(self, stem: str, options: InferOptions) -> list[str]:
        """File names of a scene's outputs in the output folder (the summary aside)."""

    def preview_layers(self, out: Path, stem: str) -> dict[str, Path]:
        """What a quicklook draws over the scene, from the scene's outputs.

        Returns:
            ``prediction`` (a class raster) and/or ``detections`` (a GeoJSON of boxes).
        """
        return {"prediction": out / f"{stem}.class.tif"}


class WrittenAtEndTask(InferenceTask):
    """A task whose outputs are written once, at the end, from the scratch folder.

    Its blocks' payloads are not used: each block stores its files, and :meth:`write` reads
    them all back when the scene's last block is done (detections and classification cells
    are small next to the scene).
    """

    def sink(self, work: SceneWork, layout: Layout, bundle: Bundle, out: Path, stem: str,
             timings: Timings, threads: int = 1,
             spare: SpareTime | NoSpareTime | None = None) -> SceneSink:
        """A sink that calls :meth:`write` when the scene closes."""
        return _WrittenAtEnd(self, work, layout, bundle, out, stem, timings)

    @abstractmethod
    def write(self, work: SceneWork, layout: Layout, bundle: Bundle, out: Path, stem: str,
              timings: Timings) -> dict[str, Any]:
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
