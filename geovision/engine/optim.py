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


def build_optimizer(cfg: NamedConfig, model: nn.Module) -> torch.optim.Optimizer:
    """``torch.optim.<name>(trainable parameters, **params)``.

    Raises:
        ConfigError: unknown name (valid names listed) or bad parameters.
    """
    cls = getattr(torch.optim, cfg.name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ConfigError(f"train.optimizer.name: unknown optimizer '{cfg.name}'; valid: "
                          f"{', '.join(_names(torch.optim, torch.optim.Optimizer))}")
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return cls(params, **cfg.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"train.optimizer.params: {cfg.name}: {exc}") from exc


def build_scheduler(cfg: SchedulerConfig | None, warmup: int, optimizer: torch.optim.Optimizer,
                    *, epochs: int, steps_per_epoch: int) -> Any:
    """An LR scheduler of ``torch.optim.lr_scheduler`` by name, after ``warmup`` intervals.

    Sensible defaults are filled in for the schedulers that need a length: ``T_max`` of
    CosineAnnealingLR, ``total_steps`` and ``max_lr`` of OneCycleLR, ``total_iters`` of
    LinearLR/PolynomialLR, counted in the scheduler's interval (epochs or steps) and net of
    the warmup. Warmup is a LinearLR from 1/1000 of the LR, chained with SequentialLR.

    Returns:
        The scheduler, or None when there is neither scheduler nor warmup.

    Raises:
        ConfigError: unknown name (valid names listed) or bad parameters.
    """
    sched = torch.optim.lr_scheduler
    interval = cfg.interval if cfg is not None else "epoch"
    length = epochs if interval == "epoch" else epochs * steps_per_epoch
    main = None
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
