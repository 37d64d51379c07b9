"""Optimizers and LR schedulers chosen by name, with linear warmup."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from geovision.engine.config import NamedConfig, SchedulerConfig
from geovision.errors import ConfigError


def _names(module: Any, base: type) -> list[str]:
    return sorted(n for n in dir(module) if isinstance(getattr(module, n), type)
                  and issubclass(getattr(module, n), base) and getattr(module, n) is not base
                  and not n.startswith("_"))


def build_optimizer(cfg: NamedConfig, model: nn.Module,
                    encoder_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """``torch.optim.<name>(parameters, **params)``.

    Every parameter of the model is given to the optimizer, frozen ones too (an optimizer
    skips a parameter without a gradient), so that ``train.freeze_encoder_epochs`` unfreezes
    the encoder without a new optimizer. With ``encoder_lr_scale`` other than 1 the encoder
    (:func:`geovision.models.finetune.encoder_parameters`) is a group of its own at
    ``lr x encoder_lr_scale``; schedulers scale both groups alike.

    Raises:
        ConfigError: unknown name (valid names listed) or bad parameters.
    """
    cls = getattr(torch.optim, cfg.name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ConfigError(f"train.optimizer.name: unknown optimizer '{cfg.name}'; valid: "
                          f"{', '.join(_names(torch.optim, torch.optim.Optimizer))}")
    params: Any = list(model.parameters())
    if encoder_lr_scale != 1.0:
        from geovision.models.finetune import param_groups

        lr = cfg.params.get("lr", _default_lr(cls))
        if not isinstance(lr, (int, float)):
            raise ConfigError(f"train.encoder_lr_scale: needs a numeric "
                              f"train.optimizer.params.lr, got {lr!r}")
        params = param_groups(model, float(lr), encoder_lr_scale)
    try:
        return cls(params, **cfg.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"train.optimizer.params: {cfg.name}: {exc}") from exc


def _default_lr(cls: type) -> Any:
    """The default ``lr`` of an optimizer class (None when it has none)."""
    import inspect

    param = inspect.signature(cls).parameters.get("lr")
    return None if param is None or param.default is inspect.Parameter.empty else param.default


class WarmupPlateau:
    """``ReduceLROnPlateau`` after an optional linear warmup, stepped once per epoch.

    :meth:`step` takes the epoch's monitored metric: during the first ``warmup`` epochs the
    learning rate ramps up (a LinearLR, as for the other schedulers) and the metric is not
    looked at; afterwards ``ReduceLROnPlateau`` lowers the rate when the metric stalls.
    """

    def __init__(self, optimizer: torch.optim.Optimizer,
                 plateau: torch.optim.lr_scheduler.ReduceLROnPlateau, warmup: int) -> None:
        self.plateau = plateau
        self.warmup = warmup
        self.epochs = 0
        self.ramp = (torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1e-3,
                                                       end_factor=1.0, total_iters=warmup)
                     if warmup > 0 else None)

    def step(self, metric: float) -> None:
        """End of an epoch whose monitored value is ``metric``."""
        self.epochs += 1
        if self.ramp is not None and self.epochs <= self.warmup:
            self.ramp.step()
        else:
            self.plateau.step(metric)

    def state_dict(self) -> dict[str, Any]:
        """The state of both parts, for checkpoints."""
        return {"epochs": self.epochs, "plateau": self.plateau.state_dict(),
                "ramp": self.ramp.state_dict() if self.ramp is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.epochs = int(state["epochs"])
        self.plateau.load_state_dict(state["plateau"])
        if self.ramp is not None and state.get("ramp") is not None:
            self.ramp.load_state_dict(state["ramp"])


def build_scheduler(cfg: SchedulerConfig | None, warmup: int, optimizer: torch.optim.Optimizer,
                    *, epochs: int, steps_per_epoch: int, monitor_mode: str = "min") -> Any:
    """An LR scheduler of ``torch.optim.lr_scheduler`` by name, after ``warmup`` intervals.

    Sensible defaults are filled in for the schedulers that need a length: ``T_max`` of
    CosineAnnealingLR, ``total_steps`` and ``max_lr`` of OneCycleLR, ``total_iters`` of
    LinearLR/PolynomialLR, counted in the scheduler's interval (epochs or steps) and net of
    the warmup. Warmup is a LinearLR from 1/1000 of the LR, chained with SequentialLR.
    ``ReduceLROnPlateau`` is a :class:`WarmupPlateau`, stepped with the monitored metric;
    its ``mode`` defaults to ``monitor_mode``.

    Returns:
        The scheduler, or None when there is neither scheduler nor warmup.

    Raises:
        ConfigError: unknown name (valid names listed) or bad parameters.
    """
    sched = torch.optim.lr_scheduler
    interval = cfg.interval if cfg is not None else "epoch"
    length = epochs if interval == "epoch" else epochs * steps_per_epoch
    main = None
    if cfg is not None and cfg.name == "ReduceLROnPlateau":
        if interval != "epoch":
            raise ConfigError("train.scheduler.interval: ReduceLROnPlateau steps once per "
                              "epoch with train.monitor; set train.scheduler.interval=epoch")
        params = {"mode": monitor_mode, **cfg.params}
        try:
            plateau = sched.ReduceLROnPlateau(optimizer, **params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"train.scheduler.params: {cfg.name}: {exc}") from exc
        return WarmupPlateau(optimizer, plateau, warmup)
    if cfg is not None:
        cls = getattr(sched, cfg.name, None)
        if not (isinstance(cls, type) and issubclass(cls, sched.LRScheduler)):
            valid = _names(sched, sched.LRScheduler)
            raise ConfigError(f"train.scheduler.name: unknown scheduler '{cfg.name}'; valid: "
                              f"{', '.join(valid)}")
        params = dict(cfg.params)
        remaining = max(1, length - warmup)
        if cfg.name == "CosineAnnealingLR":
            params.setdefault("T_max", remaining)
        elif cfg.name == "OneCycleLR":
            params.setdefault("total_steps", remaining)
            params.setdefault("max_lr", [g["lr"] for g in optimizer.param_groups])
        elif cfg.name in ("LinearLR", "PolynomialLR"):
            params.setdefault("total_iters", remaining)
        try:
            main = cls(optimizer, **params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"train.scheduler.params: {cfg.name}: {exc}") from exc
    if warmup <= 0:
        return main
    ramp = sched.LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup)
    if main is None:
        return ramp
    return sched.SequentialLR(optimizer, [ramp, main], milestones=[warmup])
