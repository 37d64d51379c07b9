"""The options of ``geovision tile`` (and of ``tile`` steps in job files)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from geovision.options import check_fields, option
from geovision.options.scenes import SceneOptions
from geovision.tasks import TASK_NAMES

#: How tiles are dealt to splits.
SPLIT_METHODS = ("block", "random")
#: What pixels that no label covers are (``--unlabeled``).
UNLABELED_CHOICES = ("background", "ignore")
#: Options that name input files (job files resolve them against the job's folder).
FILE_OPTIONS = ("class_map", "aoi")


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
        class_field: label field whose sorted values become classes 1..K (numerically when
            every value is a number; None: one class).
        layer: layer of a multi-layer vector file (None: the first).
        class_map: class-map file (YAML or JSON, :mod:`geovision.geo.classmap`) giving the
            label values their class ids, names and colours.
        buffer: radius in image pixels that turns points into discs and lines into corridors
            (detection: boxes of side ``2 * buffer``); None refuses points and lines.
        aoi: polygons (any CRS) where labels are complete; pixels outside are ignored.
        unlabeled: pixels inside the AOI that no label covers: ``background`` or ``ignore``.
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
        None, "Label field whose sorted values become classes 1..K (numerically when every "
              "value is a number: codes 2 and 10 become ids 1 and 2, named '2' and '10') "
              "[default: every feature is class 1].")
    layer: str | None = option(None, "Layer of a multi-layer vector file [default: first].")
    class_map: str | None = option(
        None, "Class-map file (YAML or JSON): each label value (of --class-field, or of a "
              "LABELS raster) -> {id, name, color}, so ids can equal your codes; values not "
              "listed are dropped, or made background or ignored, as its 'unlisted' says "
              "[default: --class-field values sorted, or a raster's values as ids].",
        metavar="FILE")
    buffer: float | None = option(
        None, "Radius in image pixels turning points into discs and lines into corridors "
              "(detection: a point is a box of side 2*PX, a line its bounding box) "
              "[default: points and lines are refused].", min=0, min_open=True,
        metavar="PX")
    aoi: str | None = option(
        None, "Area of interest: polygons (any OGR format, any CRS); pixels outside are "
              "ignore_index, only tiles whose valid share inside reaches --min-valid are made "
              "(detection: tiles wholly inside) [default: the whole rasters].", metavar="FILE")
    unlabeled: str = option(
        "background", "Pixels (inside --aoi) that no label covers: 'background', or 'ignore' "
                      "(ignore_index in masks; for partly labelled scenes).",
        choices=UNLABELED_CHOICES, noun="choice for unlabeled pixels")
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
