"""``geovision infer``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geovision.cli.options import (
    cluster_options,
    command,
    dataclass_options,
    output_option,
    output_options,
    state,
    take_options,
)
from geovision.options.infer import OUTPUT, InferOptions


@command("infer")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("scenes", nargs=-1)
@output_option(OUTPUT, "Folder of the outputs.")
@dataclass_options(InferOptions)
@cluster_options
@output_options
def infer_cmd(model: Path, scenes: tuple[str, ...], out: Path, scheduler: str | None,
              workers: int | None, overwrite: bool, resume: bool, **kwargs: Any) -> None:
    """Predict SCENES with MODEL (a model.pt bundle).

    SCENES are files, globs, folders, STAC items or ItemCollections (paths or URLs), GDAL
    paths and URLs (/vsizip/, /vsicurl/, https://, s3://, gs://); --stack gives a scene made
    of band files. The model's bands are found by name (STAC assets, band files, band
    descriptions). Windows slide over each whole scene, overlapping and blended; outputs are
    on the scene's exact grid (or, resampled to the model's pixel size, on a grid aligned to
    its origin) and named after the scene: <name>.class.tif and <name>.prob.tif (Cloud
    Optimized GeoTIFFs) for segmentation (with --vectors also
    <name>.polygons.gpkg, a polygon per connected region of a class, seam-exact),
    <name>.detections.geojson for detection, a coarse
    <name>.class.tif and <name>.classes.geojson for classification, and a run summary
    <name>.json.
    """
    options = take_options(InferOptions, kwargs)
    if not scenes and not options.stack:
        raise click.UsageError("give at least one scene (or --stack)")
    options.check()
    from geovision.inference.api import infer

    quiet = state().quiet
    summaries = infer(model, list(scenes), out, options, scheduler=scheduler, workers=workers,
                      overwrite=overwrite, resume=resume, quiet=quiet)
    if not quiet:
        for s in summaries:
            click.echo(s.report_line(out))
