"""How scenes are read: the options that ``geovision tile`` and ``geovision infer`` share.

A scene is what one raster file was: a raster file or GDAL path, a STAC item's assets, or a
stack of band files (see :mod:`geovision.geo.scenes`, which turns inputs and these options
into scenes). :class:`TileOptions <geovision.options.tile.TileOptions>` and
:class:`InferOptions <geovision.options.infer.InferOptions>` extend :class:`SceneOptions`, so
each of these options is defined once and spelled and checked the same in both commands.
"""

from __future__ import annotations

from dataclasses import dataclass

from geovision.options import check_fields, option

#: Resampling of bands read at another pixel size than their own (GDAL's names).
RESAMPLING = ("nearest", "bilinear", "cubic", "average")


def _resolution(value: tuple[float, ...]) -> str | None:
    if len(value) not in (1, 2):
        return f"{','.join(f'{v:g}' for v in value)} must be one pixel size or X,Y"
    return None


def _stacks(value: tuple[str, ...]) -> str | None:
    for stack in value:
        if not [p for p in stack.split(",") if p.strip()]:
            return "give each stack as comma-separated band files, e.g. B02.tif,B03.tif"
    return None


@dataclass(frozen=True)
class SceneOptions:
    """Which bands of which files make a scene, and the grid they are read on.

    Attributes:
        assets: band names to read, in order: STAC asset names, band files of a stack (by
            stem), or band descriptions of a file (None: every data asset or band; ``infer``
            reads the model's bands by their names).
        bands: 1-based bands of each scene to read, in order, after ``assets`` (None: all;
            ``infer``: found by the model's band names).
        resolution: pixel size (one number, or x, y) in each scene's CRS units that bands
            are read at (None: the finest of a scene's bands; a single file keeps its own).
        resampling: how bands at another pixel size are resampled onto the scene's grid.
        stack: band files of one scene each, comma-separated, in band order.
        stack_folders: each folder given is one scene whose raster files, sorted by name,
            are its bands (else a folder holds scenes: STAC items, or rasters).
    """

    assets: tuple[str, ...] | None = option(
        None, "Bands to read by name, in order: STAC asset names, band files of a stack, or "
              "band descriptions [default: every data asset / band].", metavar="B04,B03,B02")
    bands: tuple[int, ...] | None = option(
        None, "1-based bands of each scene to read, in order, e.g. 4,3,2 [default: all; "
              "infer: the model's bands, found by name].", min=1, metavar="1,2,3")
    resolution: tuple[float, ...] | None = option(
        None, "Pixel size to read scenes at, in their CRS units: R or X,Y [default: the "
              "finest band's].", min=0, min_open=True, rule=_resolution, metavar="R",
        hint="CRS units")
    resampling: str = option("nearest", "Resampling of bands read at another pixel size.",
                             choices=RESAMPLING, noun="resampling")
    stack: tuple[str, ...] = option(
        (), "Band files of one scene, comma-separated, in band order; repeat for more "
            "scenes.", multiple=True, rule=_stacks, metavar="A.tif,B.tif,...",
        fingerprint=False)
    stack_folders: bool = option(
        False, "Each folder given is ONE scene whose raster files, sorted by name, are its "
               "bands.")

    def check(self) -> None:
        """Raise :class:`~geovision.errors.InputError` naming the option that is wrong."""
        check_fields(self)
