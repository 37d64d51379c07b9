"""`geovision train` and `geovision evaluate` commands (registered on the group in cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geovision.cli import cli, command


@command(cli, "train")
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set train.epochs=3 (repeatable; values "
                   "are YAML).")
@click.option("--resume", "resume", type=click.Path(path_type=Path), default=None,
              metavar="RUN_DIR", show_default="a new run from CONFIG",
              help="Continue the run in RUN_DIR (runs/<name>) from checkpoints/last.pt.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run of the same name.")
def train_cmd(config: Path | None, overrides: tuple[str, ...], resume: Path | None,
              overwrite: bool) -> None:
    """Train a classifier, segmenter or detector on a Zarr tile dataset, from CONFIG (YAML).

    The task comes from the dataset. Writes runs/<name>/ (config.yaml, checkpoints/, model.pt,
    metrics.jsonl, tensorboard/, plots/, previews/, train.log). Several GPUs:
    torchrun --nproc_per_node=N -m geovision train CONFIG.
    """
    from geovision.engine import train

    if config is None and resume is None:
        raise click.UsageError("give a CONFIG file, or --resume RUN_DIR")
    result = train(config, overrides=overrides, resume=resume, overwrite=overwrite)
    (metric, value), = result.best.items()
    click.echo(f"{result.session}: {result.epochs} epochs, best {metric} {value:.4f} at epoch "
               f"{result.best_epoch}{' (stopped early)' if result.stopped_early else ''}; "
               f"model {result.model}")


@command(cli, "evaluate")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test",
              show_default=True, help="Tiles to evaluate on.")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), default=None,
              show_default="evaluation/ beside the model",
              help="Directory for metrics.json, confusion_matrix.png and previews.png.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Tiles per batch.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="DataLoader worker processes.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def evaluate_cmd(model: Path, dataset: Path, split: str, out_dir: Path | None, batch_size: int,
                 workers: int, device: str) -> None:
    """Evaluate the model bundle MODEL (model.pt) on a split of the tile DATASET."""
    from geovision.engine import evaluate

    out = out_dir if out_dir is not None else model.parent / f"evaluation-{split}"
    result = evaluate(model, dataset, split=split, out_dir=out, batch_size=batch_size,
                      workers=workers, device=device)
    main = {k: v for k, v in result.metrics.items() if k.count("/") == 1}
    click.echo(json.dumps({"tiles": result.tiles, **main, "output": str(out)}, indent=2))
