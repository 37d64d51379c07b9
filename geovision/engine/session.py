"""The folders the engine writes and when they are complete: training sessions, evaluations.

A training session is the directory of DESIGN.md (``runs/<name>/``); an evaluation is the
folder of ``geovision evaluate -o``. Each layout is defined here once, with the
``is_complete`` that ``geovision run`` asks before running a step again.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geovision.atomic import write_text


@dataclass(frozen=True)
class Session:
    """Paths of a session directory ``runs/<name>/``."""

    root: Path

    @property
    def config(self) -> Path:
        """Resolved config."""
        return self.root / "config.yaml"

    @property
    def last(self) -> Path:
        """Full state of the latest epoch."""
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        """Full state of the best epoch."""
        return self.root / "checkpoints" / "best.pt"

    @property
    def bundle(self) -> Path:
        """Model bundle of the best weights."""
        return self.root / "model.pt"

    @property
    def metrics(self) -> Path:
        """One JSON line per epoch."""
        return self.root / "metrics.jsonl"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event files."""
        return self.root / "tensorboard"

    @property
    def plots(self) -> Path:
        """curves.png, confusion_matrix.png."""
        return self.root / "plots"

    @property
    def previews(self) -> Path:
        """Validation predictions over the imagery."""
        return self.root / "previews"

    @property
    def log(self) -> Path:
        """The run's log."""
        return self.root / "train.log"

    def create(self) -> None:
        """Make the directory and its sub-directories."""
        for d in (self.root, self.last.parent, self.tensorboard, self.plots, self.previews):
            d.mkdir(parents=True, exist_ok=True)

    def is_complete(self) -> bool:
        """The run is over: its last checkpoint reached ``train.epochs`` or stopped early."""
        if not (self.last.exists() and self.config.exists() and self.bundle.exists()):
            return False
        import torch
        import yaml

        cfg: dict[str, Any] = yaml.safe_load(self.config.read_text()) or {}
        train: dict[str, Any] = cfg.get("train") or {}
        state: dict[str, Any] = torch.load(self.last, map_location="cpu", weights_only=True)
        if "stopped_early" in state:
            stopped = bool(state["stopped_early"])
        else:  # checkpoints written before the flag was kept
            patience = int((train.get("early_stopping") or {}).get("patience") or 0)
            stopped = patience > 0 and int(state.get("bad_epochs") or 0) >= patience
        return int(state.get("epoch") or 0) >= int(train.get("epochs") or 0) or stopped


def session_dir(output: str | os.PathLike[str], name: str) -> Path:
    """The session directory of a run: ``<output>/<name>``, the config's keys of those names."""
    return Path(output) / name


@dataclass(frozen=True)
class Evaluation:
    """Paths of an evaluation's folder (``geovision evaluate -o DIR``)."""

    root: Path

    @property
    def metrics(self) -> Path:
        """The metrics and confusion matrix as JSON, written last."""
        return self.root / "metrics.json"

    @property
    def confusion(self) -> Path:
        """The confusion matrix figure (class tasks)."""
        return self.root / "confusion_matrix.png"

    @property
    def previews(self) -> Path:
        """Tiles with truth and prediction."""
        return self.root / "previews.png"

    def is_complete(self) -> bool:
        """The evaluation is written (``metrics.json`` comes last)."""
        return self.metrics.exists()


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Append one epoch's record (non-finite numbers become null)."""
    with path.open("a") as f:
        f.write(json.dumps({k: _json_value(v) for k, v in record.items()}) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(path: Path, up_to_epoch: int | None = None) -> list[dict[str, Any]]:
    """Epoch records of a run, optionally those up to an epoch only."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if up_to_epoch is None or rec.get("epoch", 0) <= up_to_epoch:
            records.append(rec)
    return records


def rewrite_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace the records (on resume, drops those of epochs after the checkpoint)."""
    write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def attach_log(path: Path) -> logging.Handler:
    """Send geovision's log records to ``train.log`` too."""
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("geovision")
    logger.addHandler(handler)
    if not logging.getLogger().handlers and logger.level == logging.NOTSET:
        # Library use without logging set up: INFO goes to train.log only (Python's
        # last-resort handler still shows warnings alone on stderr).
        logger.setLevel(logging.INFO)
        handler.set_name("geovision-train-log-raised-level")
    return handler


def detach_log(handler: logging.Handler) -> None:
    """Stop writing to ``train.log``."""
    logger = logging.getLogger("geovision")
    logger.removeHandler(handler)
    if handler.get_name() == "geovision-train-log-raised-level":
        logger.setLevel(logging.NOTSET)
    handler.close()
