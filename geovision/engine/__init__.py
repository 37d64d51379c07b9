"""The training engine: config, loop, checkpoints, metrics, evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from geovision.lazy import exports

if TYPE_CHECKING:
    from geovision.engine.config import TrainConfig, load_config
    from geovision.engine.evaluator import EvalResult, evaluate
    from geovision.engine.trainer import TrainResult, train

__all__ = ["EvalResult", "TrainConfig", "TrainResult", "evaluate", "load_config", "train"]
__getattr__ = exports(__name__, {
    "TrainConfig": "geovision.engine.config", "load_config": "geovision.engine.config",
    "EvalResult": "geovision.engine.evaluator", "evaluate": "geovision.engine.evaluator",
    "TrainResult": "geovision.engine.trainer", "train": "geovision.engine.trainer"})
