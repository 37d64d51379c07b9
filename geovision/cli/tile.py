"""``geovision tile`` and ``geovision info``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geovision.cli.options import (
    cluster_options,
    command,
    dataclass_options,
    output_options,
    state,
    take_options,
)
from geovision.options.tile import TileOptions


@command("tile")
@click.argument("inputs", nargs=-1, required=True, metavar="RASTERS... LABELS")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="Zarr store to write (a directory, e.g. tiles.zarr).")
@dataclass_options(TileOptions)
@cluster_options
@output_options
def tile_cmd(inputs: tuple[str, ...], out: Path, scheduler: str | None, workers: int | None,
             overwrite: bool, resume: bool, **kwargs: Any) -> None:
    """Cut RASTERS and their LABELS into a Zarr tile dataset.

    RASTERS are files, globs, folders, STAC items or ItemCollections (paths or URLs), GDAL
    paths and URLs (/vsizip/, /vsicurl/, https://, s3://, gs://); --stack gives a scene made
    of band files. LABELS is a vector file (polygons; points and lines with --buffer) or a
    raster class map in any CRS. Labels are placed on each raster's own pixel grid; every
    raster block is read once; a crashed run can be resumed.
    """
    options = take_options(TileOptions, kwargs)
    if len(inputs) < 2 and not (inputs and options.stack):
        raise click.UsageError("give at least one raster (or --stack) and one label file")
    options.check()
    from geovision.tiling import tile
    from geovision.tiling.info import format_summary

    quiet = state().quiet
    path = tile(list(inputs[:-1]), inputs[-1], out, options, scheduler=scheduler,
                workers=workers, overwrite=overwrite, resume=resume, quiet=quiet)
    if not quiet:
        click.echo(format_summary(path))


@command("info")
@click.argument("path", type=click.Path(path_type=Path))
def info_cmd(path: Path) -> None:
    """Summarize a tile dataset (tiles.zarr) or a model bundle (model.pt)."""
    from geovision.errors import InputFileError

    if not path.exists():
        raise InputFileError(f"{path}: not found")
    if path.is_dir():
        from geovision.tiling.info import format_summary

        click.echo(format_summary(path))
        return
    from geovision.models.bundle import format_bundle_summary

    click.echo(format_bundle_summary(path))
