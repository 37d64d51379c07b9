"""``geovision score``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geovision.cli.options import (
    command,
    dataclass_options,
    output_option,
    overwrite_option,
    state,
    take_options,
)
from geovision.options.score import ScoreOptions


@command("score")
@click.argument("predictions")
@click.argument("labels")
@output_option("score", "Folder of score.json, report.md and the figures.")
@dataclass_options(ScoreOptions)
@overwrite_option
def score_cmd(predictions: str, labels: str, out: Path, overwrite: bool,
              **kwargs: Any) -> None:
    """Score a map over a whole scene against reference LABELS.

    PREDICTIONS is a class raster (<stem>.class.tif of geovision infer, or any class raster
    with class names in its metadata or a --class-map) or a detections file
    (<stem>.detections.geojson). LABELS is a vector file (or a raster class map). Labels are
    rasterized on the prediction's grid block by block; classes are matched by name.

    Writes OUTPUT/score.json (confusion matrix in pixels and area, overall accuracy, kappa,
    per-class IoU, F1, user's and producer's accuracy, area-adjusted accuracy and class areas
    with 95% confidence intervals; detections: precision, recall, F1, mAP), report.md and
    confusion_matrix.png (detections: pr_curve.png).
    """
    options = take_options(ScoreOptions, kwargs)
    options.check()
    from geovision.evaluation import score

    result = score(predictions, labels, out, options, overwrite=overwrite,
                   quiet=state().quiet)
    click.echo(result.summary())
    click.echo(f"{out}: {', '.join(sorted(result.outputs))}")
