"""``geovision vectorize``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from geovision.atomic import write_text
from geovision.cli.options import (
    command,
    dataclass_options,
    state,
    take_options,
)
from geovision.options.vectorize import PolygonOptions


@command("vectorize")
@click.argument("class_raster", metavar="CLASS_RASTER", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="GeoPackage (.gpkg) or GeoJSON file to write.")
@dataclass_options(PolygonOptions)
@click.option("--probabilities", type=click.Path(path_type=Path), default=None,
              show_default="none: mean_prob is left empty",
              help="Probability raster on the same grid, one band per class (infer's "
                   "<stem>.prob.tif), for the mean_prob attribute.")
@click.option("--workers", type=click.IntRange(min=1), default=None, show_default="all cores",
              help="Processes tracing blocks (1: in this process).")
@click.option("--block-size", type=click.IntRange(min=16), default=None,
              show_default="whole internal tiles, about 1024 pixels",
              help="Side of the blocks read and traced, in pixels.")
@click.option("--summary", type=click.Path(path_type=Path), default=None,
              help="Also write the run's summary as JSON: features per class, regions "
                   "joined across blocks and dropped by --min-area, seconds [default: not "
                   "written].")
@click.option("--overwrite", is_flag=True,
              help="Replace the output; in a GeoPackage, only the layer of this name (the "
                   "other layers stay).")
def vectorize_cmd(class_raster: Path, out: Path, probabilities: Path | None,
                  workers: int | None, block_size: int | None, summary: Path | None,
                  overwrite: bool, **kwargs: Any) -> None:
    """Turn CLASS_RASTER (any integer class raster) into polygons, one per connected region.

    Each 4-connected region of one class becomes one polygon with the attributes class,
    class_id, area (m²; on the ellipsoid for geographic CRSs), mean_prob and pixels, exactly
    as polygonizing the whole raster at once gives, but read block by block in bounded memory.
    Background (class 0) is left out unless --classes lists it. A GeoPackage that exists
    keeps its other layers: a new --layer is added beside them.
    """
    options = take_options(PolygonOptions, kwargs)
    from geovision.geo.vectorize import vectorize

    result = vectorize(class_raster, out, options, probabilities, workers=workers,
                       block_size=block_size, overwrite=overwrite)
    if summary is not None:
        summary.parent.mkdir(parents=True, exist_ok=True)
        write_text(summary, json.dumps(result.describe(), indent=2) + "\n")
    if not state().quiet:
        click.echo(result.report_line())
