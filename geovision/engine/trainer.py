"""``train()``: the library function behind ``geovision train``."""

from __future__ import annotations

import logging
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from geovision.atomic import write_text
from geovision.data import (
    Augment,
    BalancedSampler,
    EpochSampler,
    TileDataset,
    balanced_weights,
    read_info,
)
from geovision.engine.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from geovision.engine.config import TrainConfig, dump_config, resolve_config
from geovision.engine.metrics import TaskMetrics
from geovision.engine.optim import WarmupPlateau, build_optimizer, build_scheduler
from geovision.engine.plots import plot_confusion, plot_curves, plot_previews
from geovision.engine.runtime import Runtime, all_mean, maybe_no_sync, setup, teardown
from geovision.engine.session import (
    Session,
    append_metrics,
    attach_log,
    claim_session,
    detach_log,
    read_metrics,
    rewrite_metrics,
    session_dir,
)
from geovision.engine.tasks import for_task
from geovision.errors import ConfigError, InputError, OutputExistsError
from geovision.locks import check_free, output_lock
from geovision.models.bundle import save_bundle, unwrap, update_train_record
from geovision.models.finetune import freeze_encoder
from geovision.models.registry import build_model_with_weights
from geovision.ownership import check_removable, check_writable, remove_owned
from geovision.progress import progress_bar
from geovision.tasks import get_task

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

    counts = split_class_counts(open_group(info.path), info.task,
                                [c.id for c in info.classes],
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
        kept_epoch: the epoch whose weights ``model.pt`` holds: ``best_epoch``, or the last
            epoch when the monitored metric never improved on its first value (or stayed 0).
    """

    session: Path
    epochs: int
    best: dict[str, float]
    best_epoch: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(repr=False, default_factory=list)
    kept_epoch: int = 0

    @property
    def model(self) -> Path:
        """The model bundle."""
        return self.session / "model.pt"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _sampler(ds: TileDataset, cfg: TrainConfig, rt: Runtime, *, shuffle: bool) -> EpochSampler:
    """The epoch order of a split: every tile once, or ``data.sampler: balanced`` draws."""
    sc = cfg.data.sampler
    if not shuffle or sc.name == "random":
        return EpochSampler(len(ds), shuffle=shuffle, seed=cfg.train.seed, rank=rt.rank,
                            world=rt.world)
    if sc.positive_fraction is not None and get_task(ds.info.task).target != "boxes":
        raise ConfigError(f"data.sampler.positive_fraction: applies to detection, not "
                          f"{ds.info.task}; leave it null (tiles are weighted by class)")
    presence = ds.task.class_presence(ds)
    weights = balanced_weights(presence)
    positives = ~presence[:, 0] if sc.positive_fraction is not None else None
    if positives is not None and sc.positive_fraction is not None:
        log.info("balanced sampler: %d of %d training tiles hold objects; %.0f%% of each batch "
                 "drawn from them", int(positives.sum()), len(ds), 100 * sc.positive_fraction)
    else:
        tiles = presence.sum(axis=0)
        log.info("balanced sampler: tiles per class %s", ", ".join(
            f"{n} {int(t)}" for n, t in zip(ds.info.class_names, tiles, strict=True)))
    return BalancedSampler(weights, positives=positives, positive_fraction=sc.positive_fraction,
                           batch_size=cfg.data.batch_size, seed=cfg.train.seed, rank=rt.rank,
                           world=rt.world)


def _loader(ds: TileDataset, cfg: TrainConfig, rt: Runtime, *, shuffle: bool) -> DataLoader:
    sampler = _sampler(ds, cfg, rt, shuffle=shuffle)
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


def _start(config: Any, overrides: tuple[str, ...], resume: Any, overwrite: bool, *,
           locked: bool = False) -> tuple[TrainConfig, Session, dict[str, Any] | None]:
    """The config, the session and the checkpoint to resume; checks the output, writes nothing.

    Raises:
        InputError: the session ``name`` is not a plain folder name inside ``output``.
        OutputError: ``output`` cannot be written, or ``--overwrite`` would delete files
            geovision did not write.
        OutputExistsError: the session exists and neither ``resume`` nor ``overwrite``.
    """
    cfg = resolve_config(config, overrides, resume=resume)
    if resume is not None:
        session = Session(Path(resume))
        if not locked:
            check_free(session.root)
        check_writable(session.root, kind="dir", option="--resume")
        return cfg, session, load_checkpoint(session.last)
    session = Session(session_dir(cfg.output, cfg.name))
    if int(os.environ.get("RANK", "0")) != 0:
        # under torchrun, rank 0 alone checks and replaces the session (before every rank
        # meets in init_process_group), so that ranks never delete one another's files
        return cfg, session, None
    if not locked:
        check_free(session.root)
    check_writable(session.root, kind="dir", option="output")
    if session.root.exists() and any(session.root.iterdir()):
        if not overwrite:
            raise OutputExistsError(
                f"{session.root}: a run of this name exists; continue it with --resume "
                f"{session.root}, replace it with --overwrite, or set name=<other>")
        claim_session(session.root)  # a session of an older geovision, without a mark
        check_removable(session.root, inputs=[cfg.data.dataset], kind="dir", option="name")
    return cfg, session, None


def train(
    config: str | os.PathLike[str] | dict[str, Any] | TrainConfig | None = None,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    resume: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train a classifier, segmenter or detector on a Zarr tile dataset.

    Everything that can be checked (the session name and output, the dataset, the model, the
    optimizer, the scheduler, the monitored metric) is checked before the session folder is
    created; the folder is locked while the run writes it.

    Args:
        config: a YAML file, a dict of the same shape, or a :class:`TrainConfig`.
        overrides: ``a.b=value`` strings applied over the config (``--set``).
        resume: a session directory to continue from its ``checkpoints/last.pt``; its
            ``config.yaml`` is used (``overrides`` may extend it, e.g. ``train.epochs``).
        overwrite: replace an existing session directory of the same name (only one that
            geovision wrote).

    Returns:
        The session directory, best metric and history.

    Raises:
        ConfigError: the config is invalid.
        OutputExistsError: the session exists and neither ``resume`` nor ``overwrite``.
        OutputInUseError: another run writes the session now.
        InputError: the dataset or model does not fit.
    """
    cfg, session, state = _start(config, tuple(overrides), resume, overwrite)
    rt = setup(cfg.train.device, cfg.train.precision)
    handler = None
    if not rt.main:  # under DDP the other ranks say only what goes wrong
        logging.getLogger("geovision").setLevel(logging.WARNING)
    try:
        with (output_lock(session.root, option="name") if rt.main else nullcontext()):
            if rt.main and state is None:  # again under the lock: another run may have begun
                _start(config, tuple(overrides), resume, overwrite, locked=True)
            loop = _Loop(cfg, session, rt, state)  # every check; nothing written yet
            if rt.main:
                if state is None and overwrite:
                    remove_owned(session.root, inputs=[cfg.data.dataset], kind="dir",
                                 option="name")
                claim_session(session.root)
                session.create()
                write_text(session.config, dump_config(cfg))
                handler = attach_log(session.log)
            return loop.open().run()
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
        params = dict(cfg.model.params)
        if state is not None:  # the checkpoint holds the weights: no need for the file
            params.pop("weights", None)
        model, _report = build_model_with_weights(
            info.task, cfg.model.name, num_classes=info.num_classes, params=params,
            bands=info.bands)
        self.model: nn.Module = model.to(rt.device)
        self.frozen: bool | None = None
        self.criterion = self.task.criterion(cfg.train.loss, info, self.train_ds, rt.device)
        self.train_loader = _loader(self.train_ds, cfg, rt, shuffle=True)
        self.val_loader = (_loader(self.val_ds, cfg, rt, shuffle=False)
                           if len(self.val_ds) else None)
        batches = len(self.train_loader)
        if tc.max_steps_per_epoch is not None:
            batches = min(batches, tc.max_steps_per_epoch * tc.grad_accumulation)
        self.batches = batches
        self.steps_per_epoch = max(1, math.ceil(batches / tc.grad_accumulation))
        self.monitor = tc.monitor or (self.task.monitor if self.val_loader else "train/loss")
        mode = tc.monitor_mode
        self.mode = mode if mode != "auto" else ("min" if "loss" in self.monitor else "max")
        self.optimizer = build_optimizer(tc.optimizer, self.model, tc.encoder_lr_scale)
        self.scheduler = build_scheduler(tc.scheduler, tc.warmup, self.optimizer,
                                         epochs=tc.epochs, steps_per_epoch=self.steps_per_epoch,
                                         monitor_mode=self.mode)
        self.step_interval = tc.scheduler.interval if tc.scheduler is not None else "epoch"
        # early stopping waits for the warmup (in epochs) plus train.early_stopping.min_epochs
        warm = tc.warmup if self.step_interval == "epoch" else math.ceil(
            tc.warmup / self.steps_per_epoch)
        self.min_epochs = warm + tc.early_stopping.min_epochs
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.use_scaler)
        if self.val_loader is None and self.monitor.startswith("val/"):
            raise ConfigError(
                f"train.monitor: '{self.monitor}' needs validation tiles, but split "
                f"'{cfg.data.val_split}' of {info.path} holds none; tile again with a smaller "
                "--block-size so that every split gets tiles, or set train.monitor=train/loss")
        self.metrics = TaskMetrics(info.task, info.class_names, info.ignore_index, rt.device)
        self.epoch, self.step = 0, 0
        self.best: float | None = None
        self.best_epoch, self.bad_epochs = 0, 0
        self.first: float | None = None
        self.stopped = False
        self.history: list[dict[str, Any]] = []
        if state is not None:
            self._restore(state)
        self._set_frozen()
        self.writer: Any = None
        self._resumed = state is not None

    def open(self) -> _Loop:
        """Open the TensorBoard writer, once the session folder exists."""
        if self.rt.main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.session.tensorboard),
                                        purge_step=self.epoch + 1 if self._resumed else None)
        return self

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
        self.first = state.get("first")
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
            "first": self.first, "stopped_early": self.stopped,
            "monitor": self.monitor, "config": dump_config(self.cfg),
        }

    def _set_frozen(self) -> None:
        """Freeze the encoder while ``epoch < train.freeze_encoder_epochs``, then unfreeze.

        Under DDP the model is wrapped again when this changes: DistributedDataParallel
        synchronises only the parameters that required gradients when it was made.
        """
        frozen = self.epoch < self.cfg.train.freeze_encoder_epochs
        if frozen == self.frozen:
            return
        model = unwrap(self.model)
        if frozen or self.frozen:  # freezing, or unfreezing after a freeze
            count = freeze_encoder(model, frozen)
            log.info("epoch %d: encoder %s (%d tensors)", self.epoch + 1,
                     "frozen" if frozen else "unfrozen", count)
        self.frozen = frozen
        if self.rt.distributed:
            ids = [self.rt.device.index] if self.rt.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def run(self) -> TrainResult:
        tc = self.cfg.train
        info = self.info
        if self.epoch == 0:
            log.info("training %s (%s) on %s: %d train / %d val tiles, %d bands, %d classes, "
                     "device %s%s", self.cfg.model.name, info.task, info.path,
                     len(self.train_ds), len(self.val_ds), len(info.bands), info.num_classes,
                     self.rt.device, f", {self.rt.amp_dtype}" if self.rt.amp_dtype else "")
        while self.epoch < tc.epochs and not self.stopped:
            self._set_frozen()
            self.stopped = self._epoch()
        if self.writer is not None:
            self.writer.close()
        kept = self._keep()
        if self.rt.main and self.session.bundle.exists():
            # the bundle was written at the best epoch; now the run's length is known
            update_train_record(self.session.bundle, epochs=self.epoch,
                                stopped_early=self.stopped, kept_epoch=kept)
        return TrainResult(session=self.session.root, epochs=self.epoch,
                           best={self.monitor: float("nan") if self.best is None
                                 else float(self.best)},
                           best_epoch=self.best_epoch, stopped_early=self.stopped,
                           history=self.history, kept_epoch=kept)

    def _never_improved(self) -> str | None:
        """Why the best epoch is no model to keep (None: it is)."""
        if self.best is None:
            return f"{self.monitor} was never a finite number"
        if self.best == 0 and self.mode == "max":
            return (f"{self.monitor} stayed 0 in all {self.epoch} epochs" if self.epoch > 1
                    else f"{self.monitor} was 0 after the only epoch")
        if self.best_epoch == 1 and self.epoch > 1:
            first = self.first if self.first is not None else self.best
            return (f"{self.monitor} never improved on its first value ({first:.4g} at epoch "
                    f"1) in {self.epoch} epochs")
        return None

    def _keep(self) -> int:
        """The epoch ``model.pt`` holds: the best, or the last when the metric never moved.

        When the monitored metric never improved on its first value (or stayed 0), the
        first epoch is no better than the others and usually the worst model: the bundle
        is rewritten with the last epoch's weights and a warning says what to try.
        """
        why = self._never_improved()
        if why is None:
            return self.best_epoch
        if not self.rt.main:
            return self.epoch
        self._save_bundle()
        log.warning("%s; model.pt holds the last epoch (%d), not the best. Try more epochs "
                    "(train.epochs), a lower learning rate (train.optimizer.params.lr), or "
                    "pretrained weights (model.params.weights)", why, self.epoch)
        return self.epoch

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
        if (self.scheduler is not None and self.step_interval == "epoch"
                and not isinstance(self.scheduler, WarmupPlateau)):
            self.scheduler.step()
        self.epoch += 1
        if self.monitor not in record:
            raise ConfigError(f"train.monitor: '{self.monitor}' is not a metric of this run; "
                              f"metrics are: {', '.join(sorted(record))}")
        value = float(record[self.monitor])
        if isinstance(self.scheduler, WarmupPlateau):
            self.scheduler.step(value)
        if self.first is None and math.isfinite(value):
            self.first = value
        improved = _is_better(value, self.best, self.mode, tc.early_stopping.min_delta)
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
        else:
            self.bad_epochs += 1
        self.history.append(record)
        patience = tc.early_stopping.patience
        stop = (patience is not None and self.bad_epochs >= patience
                and self.epoch < tc.epochs and self.epoch >= self.min_epochs)
        self.stopped = stop
        if self.rt.main:
            self._write(record, improved, matrix, previews)
        if stop:
            log.info("early stopping after epoch %d: %s has not improved for %d epochs "
                     "(best %.4g at epoch %d)", self.epoch, self.monitor, self.bad_epochs,
                     self.best if self.best is not None else float("nan"), self.best_epoch)
        return stop

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

    def _save_bundle(self) -> None:
        """Write ``model.pt`` from the model's current weights."""
        info = self.info
        save_bundle(
            self.session.bundle, model=self.model, task=info.task, classes=info.classes,
            ignore_index=info.ignore_index, bands=info.bands,
            architecture={"name": self.cfg.model.name, "params": self.cfg.model.params},
            normalization={"mean": info.mean, "std": info.std},
            tile_size=info.tile_size, resolution=info.resolution,
            pixel_size=info.pixel_size,
            train={"config": dump_config(self.cfg), "epochs": self.epoch,
                   "best": {self.monitor: self.best}, "best_epoch": self.best_epoch,
                   "kept_epoch": self.epoch, "dataset": str(info.path)},
        )

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
            self._save_bundle()
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
