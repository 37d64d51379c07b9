"""Fine-tuning controls of a training run: a frozen encoder, its learning rate (issue 12).

The acceptance check: a timm resnet18 state dict (3 bands, random init, saved here) as the
weights of an smp U-Net on a 6-band dataset, trained with the encoder frozen for every epoch:
the bundle's encoder equals the file after the stem, exactly, and the stem's red, green and
blue kernels are the file's RGB kernels times the documented factor 3/6.
"""

import logging

import pytest
import timm
import torch

from geovision.engine.trainer import train
from geovision.models.bundle import read_bundle
from geovision.synthetic import make_sample
from geovision.tiling import TileOptions, tile

SIX = ("blue", "green", "red", "nir", "swir16", "swir22")


@pytest.fixture(scope="module")
def six_band_store(tmp_path_factory):
    """A 6-band segmentation store whose bands are named by --band-names."""
    root = tmp_path_factory.mktemp("six")
    sample = make_sample(root / "scene", size=96, res=10.0, bands=6, seed=2,
                         nodata_corner=0.0)
    out = root / "six.zarr"
    tile(list(sample.rasters), sample.labels, out,
         TileOptions(task="segmentation", class_field="kind", tile_size=32, split="random",
                     fractions=(0.67, 0.33, 0.0), band_names=SIX), quiet=True)
    return out


@pytest.fixture(scope="module")
def r18_file(tmp_path_factory):
    torch.manual_seed(0)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    path = tmp_path_factory.mktemp("weights") / "r18.pth"
    torch.save(state, path)
    return path, state


def _config(store, out, name, epochs, freeze, weights=None, **train_keys):
    params = {"encoder": "resnet18", "decoder_channels": [16, 8, 8, 8, 8]}
    if weights is not None:
        params["weights"] = str(weights)
    return {
        "name": name, "output": str(out),
        "data": {"dataset": str(store), "batch_size": 2, "workers": 0},
        "model": {"name": "unet", "params": params},
        "train": {"epochs": epochs, "freeze_encoder_epochs": freeze, "previews": 0,
                  "max_steps_per_epoch": 2, "scheduler": None,
                  "optimizer": {"name": "AdamW", "params": {"lr": 0.01,
                                                           "weight_decay": 0.01}},
                  **train_keys},
    }


def _encoder(state, prefix="model.encoder."):
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_frozen_encoder_keeps_the_files_weights(six_band_store, r18_file, tmp_path, caplog):
    path, r18 = r18_file
    with caplog.at_level(logging.INFO, logger="geovision"):
        result = train(_config(six_band_store, tmp_path, "frozen", 2, 2, weights=path))
    bundle = read_bundle(result.model)
    assert bundle["train"]["kept_epoch"] == result.kept_epoch
    enc = _encoder(bundle["state_dict"])
    after_stem = [k for k in enc if k != "conv1.weight"]
    assert len(after_stem) == 119  # every tensor of the file but the stem and fc
    for key in after_stem:  # weights and batch-norm statistics alike, bit for bit
        assert torch.equal(enc[key], r18[key]), key
    stem, rgb = enc["conv1.weight"], r18["conv1.weight"]
    for i, band in enumerate(("red", "green", "blue")):  # timm's RGB order
        assert torch.equal(stem[:, SIX.index(band)], rgb[:, i] * (3 / 6))
    for band in ("nir", "swir16", "swir22"):
        assert torch.equal(stem[:, SIX.index(band)], rgb.mean(dim=1) * (3 / 6))
    # the decoder did train
    fresh = train(_config(six_band_store, tmp_path, "untrained", 1, 1, weights=path,
                          max_steps_per_epoch=None, optimizer={"name": "SGD",
                                                               "params": {"lr": 0.0}}))
    decoder = [k for k in bundle["state_dict"] if k.startswith("model.decoder.")
               and k.endswith("weight")]
    untouched = read_bundle(fresh.model)["state_dict"]
    assert any(not torch.equal(bundle["state_dict"][k], untouched[k]) for k in decoder)
    text = caplog.text
    assert f"weights {path}: loaded 120 of 122 tensors" in text
    assert "3 -> 6 bands, x0.5: blue<-blue, green<-green, red<-red, nir: mean kernel" in text
    assert "epoch 1: encoder frozen (" in text


def test_encoder_unfreezes_after_n_epochs_and_resumes_exactly(six_band_store, r18_file,
                                                              tmp_path, caplog):
    path, r18 = r18_file
    with caplog.at_level(logging.INFO, logger="geovision"):
        full = train(_config(six_band_store, tmp_path, "full", 2, 1, weights=path))
    assert "epoch 2: encoder unfrozen (" in caplog.text
    last = torch.load(full.session / "checkpoints" / "last.pt", weights_only=True)["model"]
    enc = _encoder(last)
    changed = [k for k in enc if k != "conv1.weight" and not torch.equal(enc[k], r18[k])]
    assert "layer1.0.conv1.weight" in changed and "layer4.1.bn2.running_mean" in changed
    first = train(_config(six_band_store, tmp_path, "cut", 1, 1, weights=path))
    resumed = train(resume=first.session, overrides=["train.epochs=2"])
    again = torch.load(resumed.session / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(last[k], again[k]) for k in last)


def test_encoder_learning_rate_is_scaled(seg_store, tmp_path):
    cfg = {"output": str(tmp_path), "data": {"dataset": str(seg_store), "workers": 0},
           "model": {"name": "unet", "params": {"base_channels": 4, "depth": 2}},
           "train": {"epochs": 1, "previews": 0, "max_steps_per_epoch": 1, "scheduler": None,
                     "encoder_lr_scale": 0.1,
                     "optimizer": {"name": "SGD", "params": {"lr": 0.5}}}}
    result = train(cfg)
    state = torch.load(result.session / "checkpoints" / "last.pt", weights_only=True)
    groups = state["optimizer"]["param_groups"]
    assert [(g["name"], g["lr"]) for g in groups] == [("encoder", 0.05), ("decoder", 0.5)]
    from geovision.models import build_model, encoder_parameters

    model = build_model("segmentation", "unet", in_channels=4, num_classes=4,
                        params={"base_channels": 4, "depth": 2})
    assert len(groups[0]["params"]) == len(encoder_parameters(model))
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))
