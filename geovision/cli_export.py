"""`geovision export` command (registered on the group in cli.py)."""

from __future__ import annotations

from pathlib import Path

import click

from geovision.cli import cli, command


@command(cli, "export")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]),
              default="torchscript", show_default=True,
              help="torchscript (every task) or onnx (segmentation, classification; needs "
                   "pip install onnx onnxscript).")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), default=None,
              show_default="<model stem>.torchscript.pt or .onnx beside MODEL",
              help="File to write.")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
def export_cmd(model: Path, fmt: str, out: Path | None, overwrite: bool) -> None:
    """Export MODEL (a model.pt bundle) as a deployable TorchScript or ONNX file.

    The exported model takes raw pixels, float32 N x C x H x W in the bundle's band order,
    with the bundle's normalization inside; it returns class probabilities (segmentation,
    classification) or boxes, scores and labels per image (detection, TorchScript). Classes,
    bands, tile size and normalization are stored in the file (TorchScript extra file
    geovision.json, ONNX metadata_props 'geovision').
    """
    from geovision.models.export import export_model, read_export_metadata

    path = export_model(model, fmt, out, overwrite=overwrite)
    meta = read_export_metadata(path)
    click.echo(f"{path}: {meta['task']} model, {len(meta['bands'])} bands, "
               f"{len(meta['classes'])} classes, tile {meta['tile_size']} px")
