"""What a finished run records about itself."""

from pathlib import Path

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
