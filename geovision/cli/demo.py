"""``geovision demo``."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from geovision.cli.options import command, state


@command("demo")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default="demo-output",
              show_default=True, help="Folder of every output of the demo.")
@click.option("--quick", is_flag=True,
              help="A tiny version of every step (seconds, for tests); metrics mean little.")
@click.option("--overwrite", is_flag=True, help="Replace the --out folder if it is not empty.")
def demo_cmd(out_dir: Path, quick: bool, overwrite: bool) -> None:
    """Run the whole journey on generated scenes, in a few minutes on a CPU.

    Generates a training scene and an unseen scene, tiles a segmentation and a detection
    dataset, trains a small U-Net and a small FCOS detector, predicts the unseen scene,
    scores the predictions against its labels next to trivial baselines, and draws a
    quicklook (preview.png). Prints where everything is, the metrics and each step's time
    (-q hides the progress bars, -v shows the library's logs).
    """
    from geovision.demo import run_demo

    if state().verbosity <= 0:  # the steps report themselves; the library's logs are for -v
        logging.getLogger("geovision").setLevel(logging.WARNING)
    run_demo(out_dir, quick=quick, overwrite=overwrite, echo=click.echo)
