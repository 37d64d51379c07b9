"""What the blocks of a scene share: the scene's work, a block's data, and the scratch layout.

Every block of a scene runs with the same :class:`SceneWork` (plain, picklable values, so a
block can run as a task on a Dask worker). Results go to the scene's scratch directory, one
file per piece or block, written atomically, with a marker per finished block: an interrupted
run resumes from the blocks already done. The names of those files are defined here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geovision.geo.grid import Grid
from geovision.geo.polygons import PolygonPlan
from geovision.inference.layout import Block, Piece
from geovision.inference.writers import ARRAY_SUFFIX
from geovision.options.infer import InferOptions


@dataclass(frozen=True)
class SceneWork:
    """What every block of one scene needs to know (plain, picklable values).

    Attributes:
        scene: the scene's path.
        grid: the scene's pixel grid (size, affine, CRS).
        bands: 1-based scene bands, in the model's order.
        model: the bundle's path.
        device: torch device.
        task: the model's task (its inference object: :mod:`geovision.inference.tasks`).
        window: window side in pixels.
        stride: pixels between window origins.
        n_rows: windows along rows.
        n_cols: windows along columns.
        num_classes: classes, background included.
        mean: per-band normalization mean.
        std: per-band normalization std.
        options: the inference options.
        scratch: directory of the block results.
        class_ids: the class id of each model output (the bundle's classes in order), or
            None when they are ``0 .. K-1``: class rasters and polygons hold these ids.
        polygons: the scene's polygon plan with ``--vectors`` (its blocks are the layout's
            pieces; see :mod:`geovision.inference.vectors`), else None.
    """

    scene: str
    grid: Grid
    bands: tuple[int, ...]
    model: str
    device: str
    task: str
    window: int
    stride: int
    n_rows: int
    n_cols: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    options: InferOptions
    scratch: str
    polygons: PolygonPlan | None = None
    class_ids: tuple[int, ...] | None = None


@dataclass
class BlockData:
    """A block's normalized pixels and validity, as read."""

    block: Block
    pixels: np.ndarray
    valid: np.ndarray
    seconds: float


@dataclass
class Timings:
    """Seconds spent per stage."""

    read: float = 0.0
    model: float = 0.0
    write: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def add(self, other: Timings) -> None:
        """Accumulate another block's timings."""
        self.read += other.read
        self.model += other.model
        self.write += other.write


def marker(scratch: str | Path, block: Block) -> Path:
    """The file whose presence says a block is finished."""
    return Path(scratch) / f"b{block.index[0]}_{block.index[1]}.done"


def piece_path(scratch: str | Path, piece: Piece, what: str) -> Path:
    """Stored array ``what`` (``class`` or ``prob``) of a finished piece."""
    return Path(scratch) / f"p{piece.index[0]}_{piece.index[1]}.{what}{ARRAY_SUFFIX}"


def seam_path(scratch: str | Path, piece: Piece, block: tuple[int, int] | None) -> Path:
    """A block's weighted contribution to a seam piece (``block=None``: its validity)."""
    tail = "valid" if block is None else f"b{block[0]}_{block[1]}"
    return Path(scratch) / f"s{piece.index[0]}_{piece.index[1]}.{tail}{ARRAY_SUFFIX}"


def block_result(scratch: str | Path, block: Block, what: str) -> Path:
    """Stored result ``what`` (``det`` or ``cells``) of a block."""
    return Path(scratch) / f"b{block.index[0]}_{block.index[1]}.{what}{ARRAY_SUFFIX}"


def polygons_path(scratch: str | Path, piece: Piece) -> Path:
    """Polygons of a piece whose classes are final (``--vectors``)."""
    return Path(scratch) / f"p{piece.index[0]}_{piece.index[1]}.polygons.npz"
