"""The ``geovision`` group: it imports every command (commands never import it)."""

from __future__ import annotations

import sys

import click

from geovision import __version__
from geovision.cli import demo, export, generate, infer, job, score, tile, train, vectorize
from geovision.cli.options import CliState, common_options
from geovision.errors import GeovisionError


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
    """Run the command line; user errors print one line and return 2."""
    cli_state = CliState()
    try:
        cli.main(args=argv, prog_name="geovision", standalone_mode=False, obj=cli_state)
    except GeovisionError as exc:
        if cli_state.debug:
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
