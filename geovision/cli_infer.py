"""`geovision infer` command (registered on the group in cli.py)."""

from __future__ import annotations

from pathlib import Path

import click

from geovision.cli import _STATE, cli, cluster_options, command, output_options


@command(cli, "infer")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("scenes", nargs=-1, required=True)
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), default="predictions",
              show_default=True, help="Folder of the outputs.")
@click.option("--window", type=click.IntRange(min=8), default=None,
              show_default="the model's tile size", help="Window side in pixels.")
@click.option("--overlap", type=click.FloatRange(0, 1, max_open=True), default=0.25,
              show_default=True, help="Share of a window shared with each neighbour.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True,
              help="Windows per model call.")
@click.option("--blend", type=click.Choice(["gaussian", "linear", "none"]), default="gaussian",
              show_default=True, help="Weights of overlapping windows (segmentation).")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option("--probabilities/--no-probabilities", default=True, show_default=True,
              help="Also write <stem>.prob.tif (segmentation).")
@click.option("--prob-dtype", type=click.Choice(["uint8", "float32"]), default="uint8",
              show_default=True, help="uint8: 0..254 with scale 1/254 (readers see 0..1).")
@click.option("--score-threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Lowest detection score kept.")
@click.option("--nms-iou", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="IoU at which two detections of a class are one object.")
@click.option("--ios", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Intersection over the smaller box at which a box cut by a window edge "
                   "is the same object.")
@click.option("--crs", "crs", type=click.Choice(["wgs84", "native"]), default="wgs84",
              show_default=True, help="GeoJSON coordinates: RFC 7946 WGS 84, or the scene's CRS.")
@click.option("--tta", is_flag=True,
              help="Average flips and a rotation (segmentation, classification).")
@click.option("--block-windows", type=click.IntRange(min=1), default=4, show_default=True,
              help="Windows per block side: the unit of reading, resuming and cluster tasks.")
@click.option("--preview", is_flag=True,
              help="Also write <stem>.preview.png: the scene and the predictions side by side.")
@cluster_options
@output_options
def infer_cmd(model: Path, scenes: tuple[str, ...], out: Path, window: int | None,
              overlap: float, batch_size: int, blend: str, device: str, probabilities: bool,
              prob_dtype: str, score_threshold: float, nms_iou: float, ios: float, crs: str,
              tta: bool, block_windows: int, preview: bool, scheduler: str | None,
              workers: int | None, overwrite: bool, resume: bool) -> None:
    """Predict SCENES (files, globs or directories) with MODEL (a model.pt bundle).

    Windows slide over each whole scene, overlapping and blended; outputs are on the scene's
    exact grid: <stem>.class.tif and <stem>.prob.tif (Cloud Optimized GeoTIFFs) for
    segmentation, <stem>.detections.geojson for detection, a coarse <stem>.class.tif and
    <stem>.classes.geojson for classification, and a run summary <stem>.json.
    """
    from geovision.inference import InferOptions, infer

    options = InferOptions(
        window=window, overlap=overlap, batch_size=batch_size, blend=blend, device=device,
        probabilities=probabilities, prob_dtype=prob_dtype, score_threshold=score_threshold,
        nms_iou=nms_iou, ios=ios, crs=crs, tta=tta, block_windows=block_windows,
        preview=preview)
    summaries = infer(model, list(scenes), out, options, scheduler=scheduler, workers=workers,
                      overwrite=overwrite, resume=resume, quiet=_STATE["verbosity"] < 0)
    if _STATE["verbosity"] >= 0:
        for s in summaries:
            stem = Path(s["scene"]["path"]).stem
            files = ", ".join([*(str(out / n) for n in [*s["outputs"], f"{stem}.json"]),
                               *([s["preview"]] if "preview" in s else [])])
            click.echo(f"{s['scene']['path']}: {s['windows']} windows, "
                       f"{s['megapixels_per_s']:.2f} MP/s -> {files}")
