"""How long a run goes and at what rate: early stopping's minimum, ReduceLROnPlateau, bf16."""

import json
import logging
import math

import pytest
import torch

from geovision.engine.runtime import setup
from geovision.engine.session import Session
from geovision.engine.trainer import train
from geovision.errors import ConfigError


def _cfg(store, out, name="run", **train_keys):
    return {"name": name, "output": str(out),
            "data": {"dataset": str(store), "workers": 0, "batch_size": 16},
            "model": {"name": "unet", "params": {"base_channels": 4, "depth": 2}},
            "train": {"previews": 0, **train_keys}}


def _records(session):
    return [json.loads(line) for line in (session / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("warmup", "min_epochs", "stopped_at"), [(0, 0, 2), (1, 3, 4)])
def test_early_stopping_waits_for_warmup_and_min_epochs(seg_store, tmp_path, warmup,
                                                        min_epochs, stopped_at):
    # an improvement must exceed 10: none ever does, patience 1 would stop after epoch 2
    result = train(_cfg(seg_store, tmp_path, epochs=6, warmup=warmup,
                        early_stopping={"patience": 1, "min_delta": 10,
                                        "min_epochs": min_epochs}))
    assert (result.epochs, result.stopped_early) == (stopped_at, True)
    assert Session(result.session).is_complete()
    state = torch.load(result.session / "checkpoints" / "last.pt", weights_only=True)
    assert state["stopped_early"] is True and state["epoch"] == stopped_at


def _plateau_lrs(values, lr, factor, mode):
    """ReduceLROnPlateau(patience=0, threshold=0) by hand: the rate of each epoch."""
    lrs, best = [], None
    for v in values:
        lrs.append(lr)
        if best is None or (v > best if mode == "max" else v < best):
            best = v
        else:
            lr *= factor
    return lrs


@pytest.mark.parametrize(("monitor", "mode"), [("val/miou", "max"), ("train/loss", "max")])
def test_reduce_on_plateau_steps_with_the_monitored_metric(seg_store, tmp_path, monitor, mode):
    # monitoring train/loss as a maximum makes every falling loss a stall: the rate drops
    sched = {"name": "ReduceLROnPlateau", "params": {"factor": 0.5, "patience": 0,
                                                      "threshold": 0.0}}
    result = train(_cfg(seg_store, tmp_path, epochs=5, scheduler=sched, monitor=monitor,
                        monitor_mode=mode,
                        optimizer={"name": "SGD", "params": {"lr": 0.2, "momentum": 0.9}}))
    records = _records(result.session)
    values = [r[monitor] for r in records]
    lrs = [r["lr"] for r in records]
    assert lrs == pytest.approx(_plateau_lrs(values, 0.2, 0.5, mode), rel=1e-9)
    assert min(lrs) < 0.2  # it did reduce


def test_reduce_on_plateau_after_warmup_resumes_exactly(seg_store, tmp_path):
    sched = {"name": "ReduceLROnPlateau", "params": {"factor": 0.5, "patience": 0}}
    keys = {"scheduler": sched, "warmup": 1, "monitor": "train/loss", "monitor_mode": "max",
            "optimizer": {"name": "SGD", "params": {"lr": 0.2}}}
    full = train(_cfg(seg_store, tmp_path, "full", epochs=4, **keys))
    cut = train(_cfg(seg_store, tmp_path, "cut", epochs=2, **keys))
    resumed = train(resume=cut.session, overrides=["train.epochs=4"])
    lrs = [r["lr"] for r in _records(full.session)]
    assert lrs[0] == pytest.approx(0.2e-3)  # warmup: LinearLR from 1/1000
    assert lrs[1] == pytest.approx(0.2)  # then the plateau scheduler, from the full rate
    assert [r["lr"] for r in _records(resumed.session)] == lrs


def test_plateau_needs_the_epoch_interval(seg_store, tmp_path):
    sched = {"name": "ReduceLROnPlateau", "interval": "step"}
    with pytest.raises(ConfigError, match=r"^train.scheduler.interval: ReduceLROnPlateau steps "
                                          r"once per epoch with train.monitor; set "
                                          r"train.scheduler.interval=epoch$"):
        train(_cfg(seg_store, tmp_path, epochs=1, scheduler=sched))


def test_bf16_autocast_on_the_cpu(seg_store, tmp_path, caplog):
    rt = setup("cpu", "bf16")
    assert rt.amp_dtype == torch.bfloat16 and not rt.use_scaler
    conv = torch.nn.Conv2d(3, 4, 3)
    with rt.autocast():
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16
    with caplog.at_level(logging.INFO, logger="geovision"):
        result = train(_cfg(seg_store, tmp_path, epochs=1, precision="bf16"))
    assert "device cpu, torch.bfloat16" in caplog.text
    assert math.isfinite(_records(result.session)[0]["train/loss"])
    with pytest.raises(ConfigError, match=r"^train.precision: fp16 needs a CUDA device; use "
                                          r"train.precision=fp32 or auto on cpu \(or bf16\)$"):
        setup("cpu", "fp16")
