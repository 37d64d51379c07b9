"""``geovision run``: a batch job."""

from __future__ import annotations

from pathlib import Path

import click

from geovision.cli.options import cluster_options, command, state


@command("run")
@click.argument("job", type=click.Path(path_type=Path))
@click.option("--report", type=click.Path(path_type=Path), default=None,
              show_default="<workdir>/<job name>.report.json",
              help="Where to write the JSON job report.")
@cluster_options
def run_cmd(job: Path, report: Path | None, scheduler: str | None,
            workers: int | None) -> None:
    """Run the steps of a batch JOB file (YAML) in order.

    Step kinds: generate, tile, train, infer, evaluate, score, and command (any program, an
    argv list run in the workdir). Tile and infer steps run on the Dask cluster given by
    --scheduler (or the job's `scheduler:`), else on local threads. A step is skipped only
    when its outputs are complete and were made with the same options and inputs; when an
    option or input changed it runs again, and so does every later step that reads its
    outputs; the report says why each step ran or was skipped. Re-running a finished job does
    nothing; re-running a failed one finishes it. The whole file is checked before any step
    starts. See pipelines/README.md.
    """
    from geovision.jobs.runner import run_job

    quiet = state().quiet
    run_job(job, scheduler=scheduler, workers=workers, report=report, quiet=quiet,
            echo=lambda line: click.echo(line, err=False) if not quiet else None)
