"""Pretrained weights from files in every common layout, matched by name and shape.

Tests never download: they save a randomly initialised model's state dict in each layout
(plain, checkpoint with prefixes, safetensors, TorchGeo-style 13 bands, a geovision bundle,
a torch hub cache entry) and load it.
"""

import logging
import os

import pytest
import timm
import torch
import torchvision

from geovision.errors import InputError, InputFileError, ModelFileError
from geovision.models import build_model, build_model_with_weights, save_bundle
from geovision.models.bands import SENTINEL2_L1C
from geovision.models.weights import align, canonical_name

SIX = ["blue", "green", "red", "nir", "swir16", "swir22"]


@pytest.fixture(scope="module")
def r18():
    """A timm resnet18 (3 bands), randomly initialised: its state dict is 'the file'."""
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False).state_dict()


def _save(obj, path):
    torch.save(obj, path)
    return str(path)


def _assert_encoder_is_the_file(encoder_state, file_state, stem="conv1.weight"):
    for key, value in encoder_state.items():
        if key != stem:
            assert torch.equal(value, file_state[key]), key


def test_acceptance_rgb_resnet18_on_a_six_band_unet(tmp_path, r18):
    path = _save(r18, tmp_path / "r18.pth")
    model, report = build_model_with_weights(
        "segmentation", "unet", num_classes=3, bands=SIX,
        params={"encoder": "resnet18", "weights": path})
    enc = model.encoder.state_dict()
    _assert_encoder_is_the_file(enc, r18)  # every tensor after the stem, exactly
    stem, rgb = enc["conv1.weight"], r18["conv1.weight"]
    scale = 3 / 6  # documented rule: weights' bands / input bands
    assert torch.equal(stem[:, SIX.index("red")], rgb[:, 0] * scale)
    assert torch.equal(stem[:, SIX.index("green")], rgb[:, 1] * scale)
    assert torch.equal(stem[:, SIX.index("blue")], rgb[:, 2] * scale)
    assert torch.equal(stem[:, SIX.index("nir")], rgb.mean(dim=1) * scale)
    assert report.loaded == 119 and report.stem == "model.encoder.conv1.weight"
    assert report.scale == 0.5
    assert report.skipped == (("fc.weight", "no tensor of this name in the model"),
                              ("fc.bias", "no tensor of this name in the model"))
    assert report.prefix == ("", "model.encoder.")
    lines = report.lines()
    assert lines[0].startswith(f"weights {path}: loaded 120 of 122 tensors")
    assert "3 -> 6 bands, x0.5: blue<-blue, green<-green, red<-red, nir: mean kernel" in lines[1]
    assert "skipped 2: fc.weight (no tensor of this name in the model)" in lines[2]
    assert "not in the weights (initialised)" in lines[3]


@pytest.mark.parametrize("layout", ["plain", "lightning", "model_backbone", "encoder",
                                    "module", "safetensors"])
def test_checkpoint_layouts_load_the_same_tensors(tmp_path, r18, layout):
    if layout == "safetensors":
        from safetensors.torch import save_file

        path = str(tmp_path / "w.safetensors")
        save_file(r18, path)
    else:
        obj = {
            "plain": r18,
            "lightning": {"state_dict": {f"model.{k}": v for k, v in r18.items()},
                          "epoch": 3, "optimizer_states": []},
            "model_backbone": {"model": {f"backbone.{k}": v for k, v in r18.items()}},
            "encoder": {"state_dict": {f"encoder.{k}": v for k, v in r18.items()},
                        "hyper_parameters": {"lr": 0.1}},
            "module": {f"module.{k}": v for k, v in r18.items()},
        }[layout]
        path = _save(obj, tmp_path / "w.pth")
    model, report = build_model_with_weights(
        "segmentation", "unet", num_classes=2, bands=["red", "green", "blue"],
        params={"encoder": "resnet18", "weights": path})
    _assert_encoder_is_the_file(model.encoder.state_dict(), r18, stem="")
    assert report.loaded == 120 and report.stem is None  # RGB in RGB order: unchanged


@pytest.mark.parametrize(("task", "name", "params", "stem"), [
    ("classification", "resnet18", {}, "conv1.weight"),
    ("classification", "timm:resnet18", {}, "conv1.weight"),
    ("segmentation", "fpn", {"encoder": "resnet18"}, "model.encoder.conv1.weight"),
    ("segmentation", "unet", {"encoder": "tu-resnet18"}, "model.encoder.model.conv1.weight"),
    ("detection", "fcos_resnet18_fpn", {}, "backbone.body.conv1.weight"),
    ("detection", "retinanet_fpn", {"backbone": "timm:resnet18"}, "backbone.body.conv1.weight"),
])
def test_resnet18_file_fits_every_task(tmp_path, r18, task, name, params, stem):
    path = _save(r18, tmp_path / "r18.pth")
    model, report = build_model_with_weights(
        task, name, num_classes=3, bands=["red", "green", "blue", "nir"],
        params={**params, "weights": path})
    state = model.state_dict()
    assert report.stem == stem
    assert torch.equal(state[stem][:, :3], r18["conv1.weight"] * 0.75)
    body = stem.removesuffix("conv1.weight")
    assert torch.equal(state[body + "layer4.1.conv2.weight"], r18["layer4.1.conv2.weight"])
    assert torch.equal(state[body + "bn1.running_var"], r18["bn1.running_var"])


def test_torchgeo_sentinel2_resnet_on_named_bands(tmp_path):
    """A TorchGeo-style file: a timm ResNet for the 13 Sentinel-2 L1C bands, plain keys."""
    torch.manual_seed(1)
    s2 = timm.create_model("resnet18", pretrained=False, in_chans=13).state_dict()
    path = _save(s2, tmp_path / "resnet18_sentinel2_all_moco.pth")
    bands = ["B04", "B03", "B02", "B08", "SR_B6"]  # names as tiles may carry them
    model, report = build_model_with_weights(
        "classification", "timm:resnet18", num_classes=4, bands=bands,
        params={"weights": path})
    w = model.conv1.weight.detach()
    src = s2["conv1.weight"]
    scale = 13 / 5
    for j, i in enumerate([3, 2, 1, 7, 11]):  # B04 B03 B02 B08 B11
        assert torch.allclose(w[:, j], src[:, i] * scale)
    assert "13 -> 5 bands" in report.lines()[1] and "SR_B6<-B11" in report.lines()[1]


def test_weights_bands_name_a_local_files_bands(tmp_path):
    torch.manual_seed(2)
    src = timm.create_model("resnet18", pretrained=False, in_chans=4).state_dict()
    path = _save(src, tmp_path / "rgbn.pth")
    params = {"weights": path, "weights_bands": ["red", "green", "blue", "nir"]}
    model = build_model("classification", "timm:resnet18", num_classes=2,
                        bands=["nir", "red"], params=params)
    assert torch.allclose(model.conv1.weight[:, 0], src["conv1.weight"][:, 3] * 2)
    assert torch.allclose(model.conv1.weight[:, 1], src["conv1.weight"][:, 0] * 2)
    with pytest.raises(InputError, match="weights_bands"):
        build_model("classification", "timm:resnet18", num_classes=2, bands=["nir", "red"],
                    params={"weights": path})  # 4 bands: which ones is not guessable
    with pytest.raises(InputError, match="unknown band list 'landsat'"):
        build_model("classification", "timm:resnet18", num_classes=2, bands=["nir", "red"],
                    params={"weights": path, "weights_bands": "landsat"})


def test_weights_bands_preset(tmp_path):
    torch.manual_seed(3)
    src = timm.create_model("resnet18", pretrained=False, in_chans=12).state_dict()
    path = _save(src, tmp_path / "l2a.pth")
    model = build_model("classification", "timm:resnet18", num_classes=2, bands=["B12"],
                        params={"weights": path, "weights_bands": "sentinel2_l2a"})
    assert torch.allclose(model.conv1.weight[:, 0], src["conv1.weight"][:, 11] * 12)


def test_a_bundle_is_weights_with_its_own_bands(tmp_path):
    bands = [{"index": i + 1, "name": n, "dtype": "uint8"} for i, n in enumerate(SIX)]
    first = build_model("segmentation", "unet", num_classes=2, bands=bands,
                        params={"encoder": "resnet18"})
    path = save_bundle(tmp_path / "model.pt", model=first, task="segmentation",
                       classes=[{"id": 0, "name": "background"}, {"id": 1, "name": "x"}],
                       ignore_index=255, bands=bands,
                       architecture={"name": "unet", "params": {"encoder": "resnet18"}},
                       normalization={"mean": [0.0] * 6, "std": [1.0] * 6}, tile_size=64,
                       resolution=None, train={})
    model, report = build_model_with_weights(
        "segmentation", "unet", num_classes=2, bands=["red", "nir"],
        params={"encoder": "resnet18", "weights": str(path)})
    stem = first.state_dict()["model.encoder.conv1.weight"]
    got = model.state_dict()["model.encoder.conv1.weight"]
    assert torch.equal(got, torch.stack([stem[:, 2], stem[:, 3]], 1) * 3)
    assert report.skipped == ()  # decoder, head and all: everything fits but the stem


def test_torch_hub_cache_resolves_imagenet_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(4)
    tv = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(tv, cache / os.path.basename(url))
    model, report = build_model_with_weights(
        "classification", "resnet18", num_classes=2, bands=["red", "green", "blue"],
        params={"weights": "imagenet"})
    assert torch.equal(model.conv1.weight, tv["conv1.weight"])
    assert torch.equal(model.layer3[1].bn2.weight, tv["layer3.1.bn2.weight"])
    assert report.source == "imagenet"
    assert [name for name, _ in report.skipped] == ["fc.weight", "fc.bias"]


def test_hub_names_are_checked_before_any_download():
    with pytest.raises(InputError, match="valid: imagenet, IMAGENET1K_V1"):
        build_model("classification", "resnet18", in_channels=3, num_classes=2,
                    params={"weights": "coco"})
    with pytest.raises(InputError, match="fcos_tiny has no hub weights"):
        build_model("detection", "fcos_tiny", in_channels=3, num_classes=2,
                    params={"weights": "imagenet"})
    with pytest.raises(InputError, match="compact unet has no hub weights"):
        build_model("segmentation", "unet", in_channels=3, num_classes=2,
                    params={"weights": "imagenet"})
    with pytest.raises(InputError, match="smp encoder resnet18 has no weights 'advprop'"):
        build_model("segmentation", "fpn", in_channels=3, num_classes=2,
                    params={"encoder": "resnet18", "weights": "advprop"})
    with pytest.raises(InputError, match="timm has no pretrained 'resnet18.nope'"):
        build_model("classification", "timm:resnet18", in_channels=3, num_classes=2,
                    params={"weights": "nope"})


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_files_are_read_as_tensors_only(tmp_path, r18):
    marker = tmp_path / "pwned"
    path = _save({"state_dict": r18, "extra": _Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ModelFileError, match="cannot be read as plain tensors"):
        build_model("classification", "resnet18", in_channels=3, num_classes=2,
                    params={"weights": path})
    assert not marker.exists()


def test_missing_and_unfitting_files(tmp_path):
    with pytest.raises(InputFileError, match="pretrained weights file not found"):
        build_model("classification", "resnet18", in_channels=3, num_classes=2,
                    params={"weights": str(tmp_path / "missing.pth")})
    path = _save({"foo.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ModelFileError, match="no tensor matches the model by name and shape"):
        build_model("classification", "resnet18", in_channels=3, num_classes=2,
                    params={"weights": path})
    path = _save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(ModelFileError, match="holds no state dict of tensors"):
        build_model("classification", "resnet18", in_channels=3, num_classes=2,
                    params={"weights": path})


def test_shape_mismatches_are_skipped_with_the_reason(tmp_path, r18):
    path = _save(r18, tmp_path / "r18.pth")
    _, report = build_model_with_weights("classification", "timm:resnet18", num_classes=5,
                                         bands=["red", "green", "blue"],
                                         params={"weights": path})
    assert report.skipped == (("fc.weight", "shape (1000, 512) in the weights, (5, 512) in the "
                                            "model"),
                              ("fc.bias", "shape (1000,) in the weights, (5,) in the model"))
    assert report.missing == ("fc.weight", "fc.bias")


def test_report_is_logged(tmp_path, r18, caplog):
    path = _save(r18, tmp_path / "r18.pth")
    with caplog.at_level(logging.INFO, logger="geovision"):
        build_model("classification", "timm:resnet18", num_classes=2, bands=SIX,
                    params={"weights": path})
    text = caplog.text
    assert "loaded 120 of 122 tensors" in text and "3 -> 6 bands" in text


def test_alignment_undoes_timm_feature_flattening():
    assert canonical_name("stages_0.blocks.1.conv_dw.weight") == "stages.0.blocks.1.conv_dw.weight"
    src = ["stem.0.weight", "stages.0.blocks.0.conv_dw.weight", "head.fc.weight"]
    dst = ["model.encoder.model.stem_0.weight",
           "model.encoder.model.stages_0.blocks.0.conv_dw.weight"]
    ps, pt, pairs = align(src, dst)
    assert (ps, pt) == ("", "model.encoder.model.")
    assert pairs == {"stem.0.weight": dst[0], "stages.0.blocks.0.conv_dw.weight": dst[1]}


def test_convnext_timm_weights_reach_the_smp_encoder(tmp_path):
    torch.manual_seed(5)
    src = timm.create_model("convnext_atto", pretrained=False).state_dict()
    path = _save(src, tmp_path / "convnext.pth")
    model, report = build_model_with_weights(
        "segmentation", "upernet", num_classes=2, bands=["red", "green", "blue"],
        params={"encoder": "tu-convnext_atto", "weights": path})
    state = model.state_dict()
    key = "model.encoder.model.stages_3.blocks.1.mlp.fc2.weight"
    assert torch.equal(state[key], src["stages.3.blocks.1.mlp.fc2.weight"])
    assert len(report.skipped) == 4  # head.norm and head.fc weight + bias


def test_sentinel2_band_order():
    assert SENTINEL2_L1C[8] == "B8A" and len(SENTINEL2_L1C) == 13
