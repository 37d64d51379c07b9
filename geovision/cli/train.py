"""``geovision train`` and ``geovision evaluate``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from geovision.cli.options import command, dataclass_options, take_options
from geovision.options.evaluate import EvaluateOptions


@command("train")
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
    from geovision.engine.config import resolve_config

    if config is None and resume is None:
        raise click.UsageError("give a CONFIG file, or --resume RUN_DIR")
    # the config is checked before torch loads: a misspelt key answers at once
    cfg = resolve_config(config, overrides, resume=resume)
    from geovision.engine.trainer import train

    result = train(cfg, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 reports the run
    (metric, value), = result.best.items()
    click.echo(f"{result.session}: {result.epochs} epochs, best {metric} {value:.4f} at epoch "
               f"{result.best_epoch}{' (stopped early)' if result.stopped_early else ''}; "
               f"model {result.model}"
               + (f" (weights of epoch {result.kept_epoch})"
                  if result.kept_epoch not in (0, result.best_epoch) else ""))


@command("evaluate")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), default=None,
              show_default="evaluation-<split>/ beside the model",
              help="Directory for metrics.json, confusion_matrix.png, previews.png and the "
                   "curves (pr_curve.png, roc_curve.png, reliability.png, curves.json).")
@dataclass_options(EvaluateOptions)
def evaluate_cmd(model: Path, dataset: Path, out_dir: Path | None, **kwargs: Any) -> None:
    """Evaluate the model bundle MODEL (model.pt) on a split of the tile DATASET."""
    options = take_options(EvaluateOptions, kwargs)
    options.check()
    from geovision.engine.evaluator import evaluate

    out = out_dir if out_dir is not None else model.parent / f"evaluation-{options.split}"
    result = evaluate(model, dataset, out_dir=out, options=options)
    main = {k: _number(v) for k, v in result.metrics.items() if k.count("/") == 1}
    doc: dict[str, Any] = {"tiles": result.tiles, **main}
    if result.baseline:
        doc["baseline"] = {"rule": result.baseline_rule,
                           **{k: _number(v) for k, v in result.baseline.items()
                              if k.count("/") == 1}}
    doc["output"] = str(out)
    click.echo(json.dumps(doc, indent=2))


def _number(value: float) -> float | None:
    """A metric for JSON: NaN (a class absent from truth and prediction) is null."""
    return None if value != value else value
