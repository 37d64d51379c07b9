"""The training engine: config, loop, checkpoints, metrics, evaluation."""

from __future__ import annotations

from geovision.engine.config import TrainConfig, load_config
from geovision.engine.evaluate import EvalResult, evaluate
from geovision.engine.trainer import TrainResult, train

__all__ = ["EvalResult", "TrainConfig", "TrainResult", "evaluate", "load_config", "train"]
