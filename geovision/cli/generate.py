"""``geovision generate``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from geovision.cli.options import command, dataclass_options, take_options
from geovision.options.generate import GenerateOptions


@command("generate")
@click.argument("out_dir", type=click.Path(path_type=Path))
@dataclass_options(GenerateOptions)
def generate_cmd(out_dir: Path, **kwargs: Any) -> None:
    """Write a synthetic sample: rasters, labels.gpkg (all classes), objects.gpkg (buildings)."""
    options = take_options(GenerateOptions, kwargs)
    options.check()
    from geovision.synthetic import make_sample

    sample = make_sample(out_dir, **asdict(options))
    for p in (*sample.rasters, sample.labels, sample.objects):
        click.echo(p)
