"""``train()``: the library function behind ``geovision train``."""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from geovision.atomic import write_text
from geovision.data import Augment, EpochSampler, TileDataset, read_info
from geovision.engine.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from geovision.engine.config import TrainConfig, dump_config, resolve_config
from geovision.engine.metrics import TaskMetrics
from geovision.engine.optim import build_optimizer, build_scheduler
from geovision.engine.plots import plot_confusion, plot_curves, plot_previews
from geovision.engine.runtime import Runtime, all_mean, maybe_no_sync, setup, teardown
from geovision.engine.session import (
    Session,
    append_metrics,
    attach_log,
    detach_log,
    read_metrics,
    rewrite_metrics,
    session_dir,
)
from geovision.engine.tasks import for_task
from geovision.errors import ConfigError, InputError, OutputExistsError
from geovision.models.bundle import save_bundle, unwrap, update_train_record
from geovision.models.registry import build_model
from geovision.progress import progress_bar

log = logging.getLogger(__name__)


def warn_val_classes(info: Any, train_split: str, val_split: str) -> list[str]:
    """Warn when the validation split lacks a class that the training split has.

    The best checkpoint is chosen on the validation metrics, which then ignore that class
    (its IoU or F1 is null). Counts come from the store's arrays
    (:func:`geovision.tiling.info.split_class_counts`).

    Returns:
        The names of the classes missing from ``val_split``.
    """
    from geovision.formats import SPLITS
    from geovision.tiling.info import split_class_counts
    from geovision.tiling.store import open_group

    counts = split_class_counts(open_group(info.path), info.task, info.num_classes,
                                info.ignore_index)
    train, val = counts[SPLITS.index(train_split)], counts[SPLITS.index(val_split)]
    missing = [info.class_names[i] for i in np.flatnonzero((train > 0) & (val == 0))]
    if missing:
        log.warning("%s: the %s split has no %s (the %s split has): validation metrics, and "
                    "the best checkpoint chosen on them, ignore %s; tile with another --seed "
                    "or --split-block-size, or another data.val_split", info.path, val_split,
                    ", ".join(missing), train_split, "it" if len(missing) == 1 else "them")
    return missing


@dataclass(frozen=True)
class TrainResult:
    """What a finished ``train()`` returns.

    Attributes:
        session: the session directory.
        epochs: epochs completed.
        best: ``{monitored metric: best value}``.
        best_epoch: the epoch (1-based) of the best value.
        stopped_early: training stopped before ``train.epochs`` (early stopping).
        history: the per-epoch records of metrics.jsonl.
    """

    session: Path
    epochs: int
    best: dict[str, float]
    best_epoch: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(repr=False, default_factory=list)

    @property
    def model(self) -> Path:
        """The model bundle."""
        return self.session / "model.pt"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _loader(ds: TileDataset, cfg: TrainConfig, rt: Runtime, *, shuffle: bool) -> DataLoader:
    sampler = EpochSampler(len(ds), shuffle=shuffle, seed=cfg.train.seed, rank=rt.rank,
                           world=rt.world)
    workers = cfg.data.workers
    return DataLoader(
        ds, batch_size=cfg.data.batch_size, sampler=sampler, num_workers=workers,
        collate_fn=ds.collate, persistent_workers=workers > 0,
        pin_memory=rt.device.type == "cuda",
        drop_last=shuffle and len(ds) // max(rt.world, 1) > cfg.data.batch_size,
    )


def _is_better(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def _start(config: Any, overrides: tuple[str, ...], resume: Any,
           overwrite: bool) -> tuple[TrainConfig, Session, dict[str, Any] | None]:
    cfg = resolve_config(config, overrides, resume=resume)
    if resume is not None:
        session = Session(Path(resume))
        return cfg, session, load_checkpoint(session.last)
    session = Session(session_dir(cfg.output, cfg.name))
    if session.root.exists() and any(session.root.iterdir()):
        if not overwrite:
            raise OutputExistsError(
                f"{session.root}: a run of this name exists; continue it with --resume "
                f"{session.root}, replace it with --overwrite, or set name=<other>")
        _check_model(cfg)  # a run is only deleted for one that can start
        shutil.rmtree(session.root)
    return cfg, session, None


def _check_model(cfg: TrainConfig) -> None:
    """Build the configured model for the dataset once, so a bad model config fails first.

    Raises:
        InputError: the architecture does not exist for the dataset's task (listing the valid
            names) or its parameters do not fit.
    """
    info = read_info(cfg.data.dataset)
    build_model(info.task, cfg.model.name, in_channels=len(info.bands),
                num_classes=info.num_classes, params=cfg.model.params)


def train(
    config: str | os.PathLike[str] | dict[str, Any] | TrainConfig | None = None,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    resume: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train a classifier, segmenter or detector on a Zarr tile dataset.

    Args:
        config: a YAML file, a dict of the same shape, or a :class:`TrainConfig`.
        overrides: ``a.b=value`` strings applied over the config (``--set``).
        resume: a session directory to continue from its ``checkpoints/last.pt``; its
            ``config.yaml`` is used (``overrides`` may extend it, e.g. ``train.epochs``).
        overwrite: replace an existing session directory of the same name.

    Returns:
        The session directory, best metric and history.

    Raises:
        ConfigError: the config is invalid.
        OutputExistsError: the session exists and neither ``resume`` nor ``overwrite``.
        InputError: the dataset or model does not fit.
    """
    cfg, session, state = _start(config, tuple(overrides), resume, overwrite)
    rt = setup(cfg.train.device, cfg.train.precision)
    handler = None
    try:
        if rt.main:
            session.create()
            write_text(session.config, dump_config(cfg))
            handler = attach_log(session.log)
        return _Loop(cfg, session, rt, state).run()
    finally:
        if handler is not None:
            detach_log(handler)
        teardown(rt)


class _Loop:
    """One training run; state lives here so that the epoch steps stay short."""

    def __init__(self, cfg: TrainConfig, session: Session, rt: Runtime,
                 state: dict[str, Any] | None) -> None:
        self.cfg, self.session, self.rt = cfg, session, rt
        tc = cfg.train
        seed_everything(tc.seed)
        if tc.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.info = info = read_info(cfg.data.dataset)
        aug = cfg.data.augment
        augment = (Augment(hflip=aug.hflip, vflip=aug.vflip, rot90=aug.rot90, v2=aug.v2)
                   if aug.enabled else None)
        self.train_ds = TileDataset(info.path, cfg.data.train_split, augment=augment,
                                    seed=tc.seed, info=info, defer_normalization=True)
        self.val_ds = TileDataset(info.path, cfg.data.val_split, info=info,
                                  defer_normalization=True)
        if len(self.train_ds) == 0:
            raise InputError(f"{info.path}: split '{cfg.data.train_split}' holds no tile "
                             "(set data.train_split, or tile with other --fractions)")
        if len(self.val_ds) and rt.main:
            warn_val_classes(info, cfg.data.train_split, cfg.data.val_split)
        self.task = for_task(info.task)
        model = build_model(info.task, cfg.model.name, in_channels=len(info.bands),
                            num_classes=info.num_classes, params=cfg.model.params)
        self.model: nn.Module = model.to(rt.device)
        self.criterion = self.task.criterion(cfg.train.loss, info, self.train_ds, rt.device)
        self.train_loader = _loader(self.train_ds, cfg, rt, shuffle=True)
        self.val_loader = (_loader(self.val_ds, cfg, rt, shuffle=False)
                           if len(self.val_ds) else None)
        batches = len(self.train_loader)
        if tc.max_steps_per_epoch is not None:
            batches = min(batches, tc.max_steps_per_epoch * tc.grad_accumulation)
        self.batches = batches
        self.steps_per_epoch = max(1, math.ceil(batches / tc.grad_accumulation))
        self.optimizer = build_optimizer(tc.optimizer, self.model)
        self.scheduler = build_scheduler(tc.scheduler, tc.warmup, self.optimizer,
                                         epochs=tc.epochs, steps_per_epoch=self.steps_per_epoch)
        self.step_interval = tc.scheduler.interval if tc.scheduler is not None else "epoch"
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.use_scaler)
        if rt.distributed:
            ids = [rt.device.index] if rt.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.monitor = tc.monitor or (self.task.monitor if self.val_loader else "train/loss")
        mode = tc.monitor_mode
        self.mode = mode if mode != "auto" else ("min" if "loss" in self.monitor else "max")
        self.metrics = TaskMetrics(info.task, info.class_names, info.ignore_index, rt.device)
        self.epoch, self.step = 0, 0
        self.best: float | None = None
        self.best_epoch, self.bad_epochs = 0, 0
        self.history: list[dict[str, Any]] = []
        if state is not None:
            self._restore(state)
        self.writer: Any = None
        if rt.main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(session.tensorboard),
                                        purge_step=self.epoch + 1 if state else None)

    def _restore(self, state: dict[str, Any]) -> None:
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best = state.get("best")
        self.best_epoch = int(state.get("best_epoch", 0))
        self.bad_epochs = int(state.get("bad_epochs", 0))
        self.history = read_metrics(self.session.metrics, up_to_epoch=self.epoch)
        if self.rt.main:
            rewrite_metrics(self.session.metrics, self.history)
        log.info("resuming %s after epoch %d (step %d)", self.session.root, self.epoch,
                 self.step)

    def _state(self) -> dict[str, Any]:
        return {
            "geovision": {"format": "checkpoint", "version": 1},
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.rt.use_scaler else None,
            "rng": rng_state(), "epoch": self.epoch, "step": self.step, "best": self.best,
            "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "monitor": self.monitor, "config": dump_config(self.cfg),
        }

    def run(self) -> TrainResult:
        tc = self.cfg.train
        info = self.info
        if self.epoch == 0:
            log.info("training %s (%s) on %s: %d train / %d val tiles, %d bands, %d classes, "
                     "device %s%s", self.cfg.model.name, info.task, info.path,
                     len(self.train_ds), len(self.val_ds), len(info.bands), info.num_classes,
                     self.rt.device, f", {self.rt.amp_dtype}" if self.rt.amp_dtype else "")
        stopped = False
        while self.epoch < tc.epochs and not stopped:
            stopped = self._epoch()
        if self.writer is not None:
            self.writer.close()
        if self.rt.main and self.session.bundle.exists():
            # the bundle was written at the best epoch; now the run's length is known
            update_train_record(self.session.bundle, epochs=self.epoch, stopped_early=stopped)
        return TrainResult(session=self.session.root, epochs=self.epoch,
                           best={self.monitor: float("nan") if self.best is None
                                 else float(self.best)},
                           best_epoch=self.best_epoch, stopped_early=stopped,
                           history=self.history)

    def _epoch(self) -> bool:
        tc = self.cfg.train
        epoch = self.epoch
        # Every epoch starts from a seed of its own: runs resumed from a checkpoint draw the
        # same random numbers (dropout, detector sampling) as uninterrupted ones.
        torch.manual_seed(tc.seed * 100_003 + epoch)
        sampler = self.train_loader.sampler
        if isinstance(sampler, EpochSampler):
            sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        lr = float(self.optimizer.param_groups[0]["lr"])
        train_loss_value = self._train_one()
        train_time = time.perf_counter() - t0
        record: dict[str, Any] = {"epoch": epoch + 1, "step": self.step, "lr": lr,
                                  "train/loss": train_loss_value}
        previews: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
        matrix = None
        if self.val_loader is not None:
            val, matrix, previews = self._validate()
            record.update(val)
        record["time/train_s"] = round(train_time, 3)
        record["time/epoch_s"] = round(time.perf_counter() - t0, 3)
        record["tiles_per_s"] = round(len(self.train_ds) / max(train_time, 1e-9), 2)
        if self.scheduler is not None and self.step_interval == "epoch":
            self.scheduler.step()
        self.epoch += 1
        if self.monitor not in record:
            raise ConfigError(f"train.monitor: '{self.monitor}' is not a metric of this run; "
                              f"metrics are: {', '.join(sorted(record))}")
        value = float(record[self.monitor])
        improved = _is_better(value, self.best, self.mode, tc.early_stopping.min_delta)
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
        else:
            self.bad_epochs += 1
        self.history.append(record)
        if self.rt.main:
            self._write(record, improved, matrix, previews)
        patience = tc.early_stopping.patience
        if patience is not None and self.bad_epochs >= patience and self.epoch < tc.epochs:
            log.info("early stopping after epoch %d: %s has not improved for %d epochs "
                     "(best %.4g at epoch %d)", self.epoch, self.monitor, self.bad_epochs,
                     self.best if self.best is not None else float("nan"), self.best_epoch)
            return True
        return False

    def _train_one(self) -> float:
        tc, rt = self.cfg.train, self.rt
        self.model.train()
        accum = tc.grad_accumulation
        total, count, seen = 0.0, 0, 0
        t0 = time.perf_counter()
        bar = progress_bar(total=self.batches, desc=f"epoch {self.epoch + 1}/{tc.epochs}",
                           unit="batch", disable=not rt.main)
        self.optimizer.zero_grad(set_to_none=True)
        for i, raw in enumerate(self.train_loader):
            if i >= self.batches:
                break
            batch = self.task.to_device(raw, rt.device, self.train_ds.batch_normalize)
            last_micro = (i + 1) % accum == 0 or i + 1 == self.batches
            with maybe_no_sync(self.model, not last_micro), rt.autocast():
                loss = self.task.loss(self.model, batch, self.criterion)
            if not torch.isfinite(loss):
                raise InputError(f"epoch {self.epoch + 1}: the loss is {loss.item()}; lower "
                                 "train.optimizer.params.lr or set train.grad_clip")
            self.scaler.scale(loss / accum).backward()
            if last_micro:
                if tc.grad_clip is not None:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                if self.scheduler is not None and self.step_interval == "step":
                    self.scheduler.step()
            total += float(loss.detach()) * batch.size
            count += batch.size
            seen += batch.size
            bar.update(1)
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}",
                            tiles_s=f"{seen / max(time.perf_counter() - t0, 1e-9):.1f}")
        bar.close()
        return all_mean(total / max(count, 1), rt)

    @torch.no_grad()
    def _validate(self) -> tuple[dict[str, float], torch.Tensor | None,
                                 tuple[list[Any], list[Any], list[Any]]]:
        assert self.val_loader is not None
        rt = self.rt
        model = unwrap(self.model)
        model.eval()
        self.metrics.reset()
        total, count = 0.0, 0
        keep = self.cfg.train.previews
        images: list[Any] = []
        targets: list[Any] = []
        preds: list[Any] = []
        bar = progress_bar(total=len(self.val_loader), desc="validate", unit="batch",
                           disable=not rt.main)
        for raw in self.val_loader:
            batch = self.task.to_device(raw, rt.device, self.val_ds.batch_normalize)
            with rt.autocast():
                pred, loss = self.task.predict(model, batch, self.criterion)
            self.metrics.update(pred, batch.target)
            if loss is not None:
                total += float(loss) * batch.size
                count += batch.size
            for j in range(batch.size):
                if len(images) < keep:
                    images.append(batch.images[j].cpu())
                    targets.append(batch.target[j])
                    preds.append(pred[j])
            bar.update(1)
        bar.close()
        values, matrix = self.metrics.compute()
        out = {f"val/{k}": v for k, v in values.items()}
        if count:
            out["val/loss"] = all_mean(total / count, rt)
        return out, matrix, (images, targets, preds)

    def _write(self, record: dict[str, Any], improved: bool, matrix: torch.Tensor | None,
               previews: tuple[list[Any], list[Any], list[Any]]) -> None:
        s, info = self.session, self.info
        append_metrics(s.metrics, record)
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(key, value, self.epoch)
        self.writer.flush()
        state = self._state()
        save_checkpoint(s.last, state)
        if improved:
            save_checkpoint(s.best, state)
            save_bundle(
                s.bundle, model=self.model, task=info.task, classes=info.classes,
                ignore_index=info.ignore_index, bands=info.bands,
                architecture={"name": self.cfg.model.name, "params": self.cfg.model.params},
                normalization={"mean": info.mean, "std": info.std},
                tile_size=info.tile_size, resolution=info.resolution,
                pixel_size=info.pixel_size,
                train={"config": dump_config(self.cfg), "epochs": self.epoch,
                       "best": {self.monitor: self.best}, "best_epoch": self.best_epoch,
                       "dataset": str(info.path)},
            )
            if matrix is not None:
                plot_confusion(matrix, info.class_names, s.plots / "confusion_matrix.png",
                               title=f"validation, epoch {self.epoch}")
        plot_curves(self.history, self.monitor, s.plots / "curves.png")
        if previews[0]:
            plot_previews(info.task, *previews, classes=info.classes, bands=info.bands,
                          ignore_index=info.ignore_index,
                          path=s.previews / f"epoch_{self.epoch:03d}.png")
        shown = {k: v for k, v in record.items() if "/" in k and k.count("/") == 1}
        log.info("epoch %d/%d: %s%s", self.epoch, self.cfg.train.epochs,
                 ", ".join(f"{k} {v:.4g}" for k, v in shown.items()
                           if isinstance(v, float)),
                 " (best)" if improved else "")
