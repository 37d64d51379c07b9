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
@click.argument("scenes", nargs=-1, required=True)
@output_option(OUTPUT, "Folder of the outputs.")
@dataclass_options(InferOptions)
@cluster_options
@output_options
def infer_cmd(model: Path, scenes: tuple[str, ...], out: Path, scheduler: str | None,
              workers: int | None, overwrite: bool, resume: bool, **kwargs: Any) -> None:
    """Predict SCENES (files, globs or directories) with MODEL (a model.pt bundle).

    Windows slide over each whole scene, overlapping and blended; outputs are on the scene's
    exact grid: <stem>.class.tif and <stem>.prob.tif (Cloud Optimized GeoTIFFs) for
    segmentation, with --vectors also <stem>.polygons.gpkg (a polygon per connected region
    of a class, seam-exact), <stem>.detections.geojson for detection, a coarse
    <stem>.class.tif and <stem>.classes.geojson for classification, and a run summary
    <stem>.json.
    """
    options = take_options(InferOptions, kwargs)
    options.check()
    from geovision.inference.api import infer

    quiet = state().quiet
    summaries = infer(model, list(scenes), out, options, scheduler=scheduler, workers=workers,
                      overwrite=overwrite, resume=resume, quiet=quiet)
    if not quiet:
        for s in summaries:
            click.echo(s.report_line(out))
