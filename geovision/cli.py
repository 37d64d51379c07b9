"""The ``geovision`` command: a thin layer over the library functions."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from geovision import __version__
from geovision.errors import GeovisionError

log = logging.getLogger("geovision")

_STATE = {"debug": False, "verbosity": 0}


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        _STATE["debug"] = True
    return value


def _set_verbose(ctx: click.Context, param: click.Parameter, value: int) -> int:
    _STATE["verbosity"] += value
    return value


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        _STATE["verbosity"] = -1
    return value


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``-v``, ``-q`` and ``--debug``, accepted by every command."""
    func = click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_debug,
                        help="Show the full traceback of errors.")(func)
    func = click.option("-q", "--quiet", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_quiet,
                        help="Only warnings and errors; no progress bars.")(func)
    func = click.option("-v", "--verbose", count=True, expose_value=False, is_eager=True,
                        callback=_set_verbose,
                        help="More log output (-vv for debug messages).")(func)
    return func


def cluster_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--scheduler`` and ``--workers``, shared by the commands that run Dask graphs."""
    func = click.option(
        "--workers", type=click.IntRange(min=1), default=None, show_default="all cores",
        help="Local worker threads when no --scheduler is given.")(func)
    func = click.option(
        "--scheduler", metavar="ADDRESS", default=None,
        help="Dask scheduler to run on, e.g. tcp://host:8786 (default: local threads).")(func)
    return func


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--overwrite`` and ``--resume``."""
    func = click.option("--resume", is_flag=True,
                        help="Finish an interrupted run of the same command.")(func)
    func = click.option("--overwrite", is_flag=True,
                        help="Replace the output if it exists.")(func)
    return func


def _configure_logging() -> None:
    level = {-1: logging.WARNING, 0: logging.INFO}.get(_STATE["verbosity"], logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    if _STATE["verbosity"] < 2:
        for noisy in ("distributed", "rasterio", "fiona", "pyogrio", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from geovision.progress import set_quiet

    set_quiet(_STATE["verbosity"] < 0)


def command(group: click.Group, name: str, **kwargs: Any) -> Callable[..., Any]:
    """Register a command that logs as asked and reports errors the geovision way."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def run(*args: Any, **kw: Any) -> Any:
            _configure_logging()
            return func(*args, **kw)

        return group.command(name, **kwargs)(common_options(run))

    return wrap


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100})
@click.version_option(__version__, prog_name="geovision")
@common_options
def cli() -> None:
    """geovision: georeferenced imagery + vector labels -> georeferenced predictions.

    \b
    geovision demo                                      the whole journey, in minutes on a CPU
    geovision generate sample/                          synthetic scene and labels
    geovision tile rasters/ labels.gpkg -o tiles.zarr   raster + vector -> Zarr tiles
    geovision info tiles.zarr                           summary of a dataset or model
    geovision train config.yaml                         train a model on tiles
    geovision evaluate model.pt tiles.zarr              metrics on a split
    geovision infer runs/<name>/model.pt scene.tif      predictions on the scene's grid
    geovision export model.pt --format onnx             a deployable TorchScript/ONNX model
    geovision run pipelines/<job>.yaml                  a batch job, on a Dask cluster

    Every command's --help gives each option with its default.
    """  # noqa: D301  (click's no-rewrap marker is the \b character, not a backslash)


def _parse_ints(value: str | None, option: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of integers",
                                 param_hint=option) from exc


def _parse_fractions(value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError as exc:
        raise click.BadParameter(f"'{value}' is not three comma-separated numbers",
                                 param_hint="--fractions") from exc
    if len(parts) != 3:
        raise click.BadParameter(f"'{value}' must give three shares: train,val,test",
                                 param_hint="--fractions")
    return (parts[0], parts[1], parts[2])


@command(cli, "tile")
@click.argument("inputs", nargs=-1, required=True, metavar="RASTERS... LABELS")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="Zarr store to write (a directory, e.g. tiles.zarr).")
@click.option("--task", type=click.Choice(["segmentation", "classification", "detection"]),
              default="segmentation", show_default=True, help="What the tiles are labelled for.")
@click.option("--class-field", default=None,
              help="Label field whose sorted values become classes 1..K "
                   "[default: every feature is class 1].")
@click.option("--layer", default=None, help="Layer of a multi-layer vector file [default: first].")
@click.option("--tile-size", type=click.IntRange(min=8), default=256, show_default=True,
              help="Tile side in pixels.")
@click.option("--stride", type=click.IntRange(min=1), default=None,
              show_default="tile size (no overlap)", help="Pixels between tile origins.")
@click.option("--bands", default=None, metavar="1,2,3",
              help="1-based bands to keep, in order [default: all].")
@click.option("--min-valid", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Skip tiles with a smaller fraction of valid (not nodata) pixels.")
@click.option("--split", "split_method", type=click.Choice(["block", "random"]),
              default="block", show_default=True,
              help="block: whole spatial blocks go to one split; random: per tile.")
@click.option("--fractions", default="0.8,0.1,0.1", show_default=True,
              help="Train,val,test shares.")
@click.option("--block-size", type=click.IntRange(min=1), default=None,
              show_default="4 x tile size", help="Split block side in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--min-box-visible", type=click.FloatRange(0, 1, min_open=True), default=0.5,
              show_default=True,
              help="Detection: share of a box's area that must lie inside a tile.")
@cluster_options
@output_options
def tile_cmd(inputs: tuple[str, ...], out: Path, task: str, class_field: str | None,
             layer: str | None, tile_size: int, stride: int | None, bands: str | None,
             min_valid: float, split_method: str, fractions: str, block_size: int | None,
             seed: int, min_box_visible: float, scheduler: str | None, workers: int | None,
             overwrite: bool, resume: bool) -> None:
    """Cut RASTERS (files, globs or directories) and vector LABELS into a Zarr tile dataset.

    Labels are reprojected to each raster's CRS; masks are burned on each raster's own pixel
    grid; the work runs as a Dask graph over windows and can be resumed after a crash.
    """
    from geovision.tiling import TileOptions, tile
    from geovision.tiling.info import format_summary

    if len(inputs) < 2:
        raise click.UsageError("give at least one raster and one label file")
    options = TileOptions(
        task=task, class_field=class_field, layer=layer, tile_size=tile_size, stride=stride,
        bands=_parse_ints(bands, "--bands"), min_valid=min_valid, split=split_method,
        fractions=_parse_fractions(fractions), block_size=block_size, seed=seed,
        min_box_visible=min_box_visible,
    )
    path = tile(list(inputs[:-1]), inputs[-1], out, options, scheduler=scheduler,
                workers=workers, overwrite=overwrite, resume=resume,
                quiet=_STATE["verbosity"] < 0)
    if _STATE["verbosity"] >= 0:
        click.echo(format_summary(path))


@command(cli, "info")
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
    try:
        from geovision.models.bundle import format_bundle_summary
    except ImportError as exc:  # pragma: no cover - models/ ships with the package
        raise GeovisionError(f"{path}: model bundles need geovision.models") from exc
    click.echo(format_bundle_summary(path))


@command(cli, "generate")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--size", type=click.IntRange(min=16), default=1024, show_default=True,
              help="Raster width and height in pixels.")
@click.option("--crs", "crss", multiple=True, default=["EPSG:32633"], show_default=True,
              help="CRS of a raster; repeat for several rasters over neighbouring areas.")
@click.option("--bands", type=click.IntRange(min=1), default=4, show_default=True,
              help="Band count.")
@click.option("--dtype", type=click.Choice(["uint8", "uint16", "int16", "float32"]),
              default="uint8", show_default=True, help="Pixel type.")
@click.option("--res", type=float, default=10.0, show_default=True,
              help="Pixel size in metres (about, for geographic CRSs).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
def generate_cmd(out_dir: Path, size: int, crss: tuple[str, ...], bands: int, dtype: str,
                 res: float, seed: int) -> None:
    """Write a synthetic sample: rasters, labels.gpkg (all classes), objects.gpkg (buildings)."""
    from geovision.synthetic import make_sample

    sample = make_sample(out_dir, size=size, crss=crss, bands=bands, dtype=dtype, res=res,
                         seed=seed)
    for p in (*sample.rasters, sample.labels, sample.objects):
        click.echo(p)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2."""
    _STATE.update(debug=False, verbosity=0)
    try:
        cli.main(args=argv, prog_name="geovision", standalone_mode=False)
    except GeovisionError as exc:
        if _STATE["debug"]:
            raise
        click.echo(f"geovision: error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("geovision: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("geovision: interrupted", err=True)
        return 130
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


# Commands of the other stages live beside this module and register themselves on `cli`.
from geovision import cli_demo, cli_export, cli_infer, cli_run, cli_train  # noqa: E402, F401
