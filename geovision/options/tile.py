"""The options of ``geovision tile`` (and of ``tile`` steps in job files)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from geovision.options import check_fields, option
from geovision.options.scenes import SceneOptions
from geovision.tasks import TASK_NAMES

#: How tiles are dealt to splits.
SPLIT_METHODS = ("block", "random")


def _shares(fractions: tuple[float, ...]) -> str | None:
    if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, rel_tol=1e-8,
                                                         abs_tol=1e-8):
        return (f"{fractions} must be three shares (train,val,test) that add up to 1")
    return None


@dataclass(frozen=True)
class TileOptions(SceneOptions):
    """How a tile dataset is cut (the options of ``geovision tile``).

    The options that say how scenes are read (``assets``, ``bands``, ``resolution``,
    ``resampling``, ``stack``, ``stack_folders``) are :class:`SceneOptions`', shared with
    ``geovision infer``.

    Attributes:
        task: segmentation, classification or detection.
        class_field: label field whose sorted values become classes 1..K (None: one class).
        layer: layer of a multi-layer vector file (None: the first).
        tile_size: tile side in pixels.
        stride: pixels between tile origins (None: ``tile_size``, no overlap).
        band_names: names of the bands read, in order, for rasters whose bands have no
            descriptions (None: asset names, band file names or descriptions, else
            ``band1``, ``band2``, ...).
        min_valid: tiles whose fraction of valid (not nodata) pixels is lower are skipped.
        split: ``block`` (spatial blocks, default) or ``random``.
        fractions: train, val, test shares.
        block_size: side of a split block in pixels (None: 4 x ``tile_size``).
        seed: seed of the split.
        min_box_visible: detection; share of a box's area that must lie in a tile.
        shard: tiles stored together in one shard object.
    """

    task: str = option("segmentation", "What the tiles are labelled for.",
                       choices=TASK_NAMES, noun="task")
    class_field: str | None = option(
        None, "Label field whose sorted values become classes 1..K "
              "[default: every feature is class 1].")
    layer: str | None = option(None, "Layer of a multi-layer vector file [default: first].")
    tile_size: int = option(256, "Tile side in pixels.", min=8, hint="pixels")
    stride: int | None = option(None, "Pixels between tile origins.", min=1,
                                show_default="tile size (no overlap)")
    band_names: tuple[str, ...] | None = option(
        None, "Names of the bands read, in order, for rasters whose bands have no "
              "descriptions [default: asset or file names, descriptions, else band1, ...].",
        metavar="red,green,blue")
    min_valid: float = option(0.5, "Skip tiles with a smaller fraction of valid (not nodata) "
                                   "pixels.", min=0, max=1)
    split: str = option("block", "block: whole spatial blocks go to one split; random: per "
                                 "tile.", choices=SPLIT_METHODS, noun="split method")
    fractions: tuple[float, float, float] = option(
        (0.8, 0.1, 0.1), "Train,val,test shares.", rule=_shares, metavar="TRAIN,VAL,TEST")
    block_size: int | None = option(None, "Split block side in pixels.", min=1,
                                    show_default="4 x tile size")
    seed: int = option(0, "Seed of the split.")
    min_box_visible: float = option(0.5, "Detection: share of a box's area that must lie "
                                         "inside a tile.", min=0, max=1, min_open=True)
    shard: int = option(16, "Tiles stored together in one shard object.", min=1, cli=False)

    def check(self) -> None:
        """Raise :class:`~geovision.errors.InputError` naming the option that is wrong."""
        check_fields(self)

    @property
    def step(self) -> int:
        """Pixels between tile origins."""
        return self.stride or self.tile_size

    @property
    def split_block_size(self) -> int:
        """Side of a split block in pixels."""
        return self.block_size or 4 * self.tile_size
