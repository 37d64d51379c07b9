"""``geovision export``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geovision.cli.options import (
    command,
    dataclass_options,
    output_option,
    overwrite_option,
    take_options,
)
from geovision.options.export import ExportOptions


@command("export")
@click.argument("model", type=click.Path(path_type=Path))
@dataclass_options(ExportOptions)
@output_option(None, "File to write.",
               show_default="<model stem>.torchscript.pt or .onnx beside MODEL")
@overwrite_option
def export_cmd(model: Path, out: Path | None, overwrite: bool, **kwargs: Any) -> None:
    """Export MODEL (a model.pt bundle) as a deployable TorchScript or ONNX file.

    The exported model takes raw pixels, float32 N x C x H x W in the bundle's band order,
    with the bundle's normalization inside; it returns class probabilities (segmentation,
    classification) or boxes, scores and labels per image (detection, TorchScript). Classes,
    bands, tile size and normalization are stored in the file (TorchScript extra file
    geovision.json, ONNX metadata_props 'geovision').
    """
    options = take_options(ExportOptions, kwargs)
    options.check()
    from geovision.models.export import export_model, read_export_metadata

    path = export_model(model, options.format, out, overwrite=overwrite)
    meta = read_export_metadata(path)
    click.echo(f"{path}: {meta['task']} model, {len(meta['bands'])} bands, "
               f"{len(meta['classes'])} classes, tile {meta['tile_size']} px")
