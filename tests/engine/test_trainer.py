"""``train()``: what a run records about itself, and resuming it exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from geovision.cli.main import main
from geovision.engine.trainer import train
from geovision.models.bundle import read_bundle


def test_the_bundle_says_how_many_epochs_ran_and_which_was_best(seg_store, tmp_path, capsys):
    result = train({"data": {"dataset": str(seg_store), "workers": 0, "batch_size": 16},
                    "model": {"name": "unet", "params": {"base_channels": 4, "depth": 2}},
                    "output": str(tmp_path), "train": {"epochs": 3, "previews": 0}})
    best = max(range(3), key=lambda i: (result.history[i]["val/miou"], -i)) + 1
    assert (result.epochs, result.best_epoch, result.kept_epoch) == (3, best, best)
    record = read_bundle(result.model)["train"]
    assert (record["epochs"], record["best_epoch"], record["stopped_early"]) == (3, best, False)
    assert main(["info", str(result.model)]) == 0
    assert f"trained    3 epochs (best epoch {best}) on " in capsys.readouterr().out
    assert Path(record["dataset"]) == Path(seg_store)


def test_a_metric_that_never_improves_keeps_the_last_epoch(seg_store, tmp_path, capsys, caplog):
    # only an improvement by more than 10 counts: the first epoch stays the "best" of three
    result = train({"data": {"dataset": str(seg_store), "workers": 0, "batch_size": 16},
                    "model": {"name": "unet", "params": {"base_channels": 4, "depth": 2}},
                    "output": str(tmp_path), "train": {
                        "epochs": 3, "previews": 0, "early_stopping": {"min_delta": 10}}})
    assert (result.epochs, result.best_epoch, result.kept_epoch) == (3, 1, 3)
    raw = read_bundle(result.model)
    record = raw["train"]
    assert (record["epochs"], record["best_epoch"], record["kept_epoch"]) == (3, 1, 3)
    last = torch.load(result.session / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(raw["state_dict"][k], v) for k, v in last.items())
    first = result.history[0]["val/miou"]
    assert (f"val/miou never improved on its first value ({first:.4g} at epoch 1) in 3 "
            "epochs; model.pt holds the last epoch (3), not the best. Try more epochs "
            "(train.epochs), a lower learning rate (train.optimizer.params.lr), or pretrained "
            "weights (model.params.weights)") in caplog.text
    assert main(["info", str(result.model)]) == 0
    assert ("trained    3 epochs (best epoch 1, model of epoch 3: the metric never improved) "
            "on ") in capsys.readouterr().out


def _config(store, out, name, epochs, scheduler):
    return {
        "name": name, "output": str(out),
        "data": {"dataset": str(store), "batch_size": 4, "workers": 0},
        "model": {"name": "unet", "params": {"base_channels": 4, "depth": 2, "dropout": 0.1}},
        "train": {"epochs": epochs, "seed": 3, "previews": 1, "scheduler": scheduler,
                  "optimizer": {"name": "SGD", "params": {"lr": 0.05, "momentum": 0.9}}},
    }


def _weights(session):
    return torch.load(session / "checkpoints" / "last.pt", weights_only=True)["model"]


def _metrics(session):
    lines = (session / "metrics.jsonl").read_text().splitlines()
    drop = ("time/train_s", "time/epoch_s", "tiles_per_s")
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in lines]


def test_resume_equals_uninterrupted_run(seg_store, tmp_path):
    full = train(_config(seg_store, tmp_path, "full", 2, None))
    first = train(_config(seg_store, tmp_path, "crashed", 1, None))
    resumed = train(resume=first.session, overrides=["train.epochs=2"])
    assert resumed.epochs == 2
    a, b = _weights(full.session), _weights(resumed.session)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _metrics(full.session) == _metrics(resumed.session)


def test_fresh_run_refuses_existing_session(seg_store, tmp_path):
    from geovision.errors import InputError, OutputExistsError

    cfg = _config(seg_store, tmp_path, "again", 1, None)
    cfg["train"]["max_steps_per_epoch"] = 1
    train(cfg)
    with pytest.raises(OutputExistsError, match="--resume"):
        train(cfg)
    assert train(cfg, overwrite=True).epochs == 1
    bad = {**cfg, "model": {"name": "unet3", "params": {}}}
    with pytest.raises(InputError, match="unet"):
        train(bad, overwrite=True)
    assert (tmp_path / "again" / "model.pt").exists()  # the old run is kept


@pytest.mark.slow  # kill -9 and resume
def test_kill_9_after_first_checkpoint_then_resume(seg_store, tmp_path):
    import yaml

    cfg = _config(seg_store, tmp_path, "killed", 4, {"name": "CosineAnnealingLR"})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ref = cfg | {"name": "reference"}
    reference = train(ref)
    cmd = [sys.executable, "-m", "geovision", "-q", "train", str(path)]
    proc = subprocess.Popen(cmd, start_new_session=True)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert last.exists()
    epoch = torch.load(last, weights_only=True)["epoch"]
    assert epoch < 4
    again = [*cmd[:-2], "train", "--resume", str(tmp_path / "killed")]
    assert subprocess.run(again).returncode == 0
    a, b = _weights(reference.session), _weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _metrics(reference.session) == _metrics(tmp_path / "killed")


@pytest.mark.parametrize(("best", "best_epoch", "epochs", "mode", "why"), [
    (0.0, 1, 12, "max", "val/map_50 stayed 0 in all 12 epochs"),
    (0.0, 1, 1, "max", "val/map_50 was 0 after the only epoch"),
    (0.25, 1, 5, "max", "val/map_50 never improved on its first value (0.25 at epoch 1) in 5 "
                        "epochs"),
    (None, 0, 3, "max", "val/map_50 was never a finite number"),
    (0.25, 3, 5, "max", None),
    (0.0, 2, 5, "min", None),
    (0.5, 1, 1, "max", None),
])
def test_when_the_best_epoch_is_no_model_to_keep(best, best_epoch, epochs, mode, why):
    from types import SimpleNamespace

    from geovision.engine.trainer import _Loop

    loop = SimpleNamespace(best=best, best_epoch=best_epoch, epoch=epochs, mode=mode,
                           first=best, monitor="val/map_50")
    assert _Loop._never_improved(loop) == why
