"""The ``geovision`` group: it imports every command (commands never import it)."""

from __future__ import annotations

import logging
import sys
import traceback

import click

from geovision import __version__
from geovision.cli import demo, export, generate, infer, job, score, tile, train, vectorize
from geovision.cli.options import CliState, common_options


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
    geovision vectorize scene.class.tif -o out.gpkg     polygons of a class raster
    geovision score scene.class.tif labels.gpkg         accuracy of a map, with intervals
    geovision export model.pt --format onnx             a deployable TorchScript/ONNX model
    geovision run pipelines/<job>.yaml                  a batch job, on a Dask cluster

    Every command's --help gives each option with its default.
    """  # noqa: D301  (click's no-rewrap marker is the \b character, not a backslash)


for _command in (tile.tile_cmd, tile.info_cmd, generate.generate_cmd, train.train_cmd,
                 train.evaluate_cmd, infer.infer_cmd, score.score_cmd,
                 vectorize.vectorize_cmd, export.export_cmd, job.run_cmd, demo.demo_cmd):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; mistakes print one line ``geovision: error: ...`` and return 2.

    User errors (:class:`GeovisionError`), usage errors of the command line and low-level
    failures that name a file (an ``OSError``, a GDAL error, a refused torch file: see
    :func:`geovision.failures.translate`) all answer with one line and exit code 2;
    ``--debug`` shows their traceback too, with the same exit code. Anything else is a bug
    and keeps its traceback (exit 1).
    """
    cli_state = CliState()
    try:
        cli.main(args=argv, prog_name="geovision", standalone_mode=False, obj=cli_state)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return exc.exit_code
    except click.ClickException as exc:
        return _usage_error(exc, cli_state)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        _quiet_after_interrupt()
        click.echo("geovision: interrupted" if isinstance(exc, KeyboardInterrupt)
                   else "geovision: aborted", err=True)
        return 130
    except Exception as exc:
        from geovision.failures import translate

        error = translate(exc)
        if error is None:
            raise
        if cli_state.debug:
            traceback.print_exc()
        click.echo(f"geovision: error: {error}", err=True)
        return 2
    return 0


def _usage_error(exc: click.ClickException, cli_state: CliState) -> int:
    """A usage error of the command line as one line, naming the command's --help."""
    if cli_state.debug:
        traceback.print_exc()
    text = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    hint = ""
    if isinstance(exc, click.UsageError) and ctx is not None:
        hint = f" (see {ctx.command_path} --help)"
    click.echo(f"geovision: error: {text}{hint}", err=True)
    return exc.exit_code


def _quiet_after_interrupt() -> None:
    """After Ctrl-C, tasks of a stopped event loop (zarr's) are not worth an error line each."""
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
