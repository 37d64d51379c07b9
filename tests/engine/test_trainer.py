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
    # only an improvement by more than 10 counts: the first epoch stays the best of three
    result = train({"data": {"dataset": str(seg_store), "workers": 0, "batch_size": 16},
                    "model": {"name": "unet", "params": {"base_channels": 4, "depth": 2}},
                    "output": str(tmp_path), "train": {
                        "epochs": 3, "previews": 0, "early_stopping": {"min_delta": 10}}})
    assert (result.epochs, result.best_epoch) == (3, 1)
    record = read_bundle(result.model)["train"]
    assert (record["epochs"], record["best_epoch"], record["stopped_early"]) == (3, 1, False)
    assert main(["info", str(result.model)]) == 0
    assert "trained    3 epochs (best epoch 1) on " in capsys.readouterr().out
    assert Path(record["dataset"]) == Path(seg_store)


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
