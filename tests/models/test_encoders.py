"""Encoders for every task: smp segmenters, timm classifiers, timm/torchvision backbones.

Random initialisation only (nothing is downloaded), tiny inputs, any band count and size.
"""

import pytest
import torch

from geovision.errors import InputError
from geovision.models import (
    build_model,
    encoder_parameters,
    freeze_encoder,
    is_encoder_frozen,
    load_bundle,
    param_groups,
    save_bundle,
)
from geovision.models.segmentation import EncoderDecoder
from geovision.models.unet import UNet

CLASSES = [{"id": 0, "name": "background"}, {"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


@pytest.mark.parametrize("name", ["unet", "unetplusplus", "fpn", "deeplabv3plus", "upernet"])
@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet-b0", "tu-resnet18"])
def test_segmenters_take_any_encoder_bands_and_size(name, encoder):
    model = build_model("segmentation", name, in_channels=5, num_classes=3,
                        params={"encoder": encoder}).eval()
    assert isinstance(model, EncoderDecoder)
    with torch.no_grad():
        out = model(torch.randn(2, 5, 40, 52))  # not a multiple of the encoder's stride
    assert out.shape == (2, 3, 40, 52)
    assert model.encoder.state_dict()  # the pretrained part is reachable


def test_unet_without_encoder_is_still_our_unet():
    model = build_model("segmentation", "unet", in_channels=4, num_classes=2,
                        params={"base_channels": 4, "depth": 2})
    assert isinstance(model, UNet)
    assert next(iter(model.state_dict())) == "down.0.0.weight"  # layout of existing bundles


@pytest.mark.parametrize("name", ["timm:resnet18", "timm:efficientnet_b0",
                                  "timm:convnext_atto"])
def test_timm_classifiers(name):
    model = build_model("classification", name, in_channels=7, num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 7, 32, 32)).shape == (2, 4)


@pytest.mark.parametrize(("name", "params"), [
    ("fcos_fpn", {"backbone": "resnet18"}),
    ("fcos_fpn", {"backbone": "timm:resnet18"}),
    ("retinanet_fpn", {"backbone": "timm:efficientnet_b0"}),
    ("fasterrcnn_fpn", {"backbone": "timm:resnet18", "box_score_thresh": 0.0}),
])
def test_detectors_take_timm_and_torchvision_backbones(name, params):
    model = build_model("detection", name, in_channels=6, num_classes=3, params=params).eval()
    with torch.no_grad():
        out = model([torch.randn(6, 64, 64)])
    assert set(out[0]) == {"boxes", "scores", "labels"}
    assert model.backbone.body.state_dict()


@pytest.mark.parametrize(("task", "name", "params", "message"), [
    ("segmentation", "fpn", {"encoder": "resnet181"}, "unknown encoder 'resnet181'"),
    ("segmentation", "unet", {"encoder": "tu-convnext_tinyy"}, "tu-convnext_tiny"),
    ("segmentation", "fpn", {"encoder": "resnet18", "classes": 3}, "model.params.classes"),
    ("classification", "timm:resnet_18", {}, "did you mean"),
    ("detection", "fcos_fpn", {"backbone": "vgg16"}, "not a torchvision ResNet"),
    ("detection", "fcos_fpn", {"backbone": "timm:resnet1"}, "timm has no model 'resnet1'"),
])
def test_bad_names_say_what_is_valid(task, name, params, message):
    with pytest.raises(InputError, match=message):
        build_model(task, name, in_channels=3, num_classes=2, params=params)


@pytest.mark.parametrize(("task", "name", "params"), [
    ("segmentation", "unet", {"encoder": "resnet18"}),
    ("segmentation", "deeplabv3plus", {"encoder": "tu-resnet18"}),
    ("classification", "timm:resnet18", {}),
    ("detection", "fcos_fpn", {"backbone": "timm:resnet18"}),
])
def test_bundles_rebuild_from_name_and_params_without_fetching(tmp_path, task, name, params):
    bands = [{"index": i + 1, "name": n, "dtype": "uint8"} for i, n in enumerate("bgrn")]
    model = build_model(task, name, num_classes=3, bands=bands, params=params).eval()
    # The weights a run started from are recorded but never read again (the file is gone,
    # the hub name is never resolved): the bundle's state dict has the weights.
    recorded = {**params, "weights": str(tmp_path / "gone.pth")}
    path = save_bundle(tmp_path / "model.pt", model=model, task=task, classes=CLASSES,
                       ignore_index=255, bands=bands,
                       architecture={"name": name, "params": recorded},
                       normalization={"mean": [0.0] * 4, "std": [1.0] * 4}, tile_size=64,
                       resolution=None, train={})
    raw = torch.load(path, weights_only=True)
    assert raw["architecture"] == {"name": name, "params": recorded}
    bundle = load_bundle(path)
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        if task == "detection":
            a, b = model(list(x)), bundle.model(list(x))
            assert all(torch.equal(p["boxes"], q["boxes"]) for p, q in zip(a, b, strict=True))
        else:
            assert torch.equal(model(x), bundle.model(x))


def test_freeze_encoder_keeps_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = build_model("segmentation", "unet", in_channels=4, num_classes=2,
                        params={"encoder": "resnet18"})
    enc = model.encoder
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    decoder_bn = model.model.decoder.blocks[0].conv1[1]
    decoder_before = decoder_bn.running_mean.clone()
    assert freeze_encoder(model) == len(encoder_parameters(model))
    assert is_encoder_frozen(model)
    opt = torch.optim.AdamW([g for g in param_groups(model, 1e-2)], weight_decay=0.1)
    for _ in range(2):
        model.train()  # the loop calls train() every epoch: the encoder's BN stays in eval
        loss = model(torch.randn(2, 4, 64, 64)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = enc.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(decoder_bn.running_mean, decoder_before)  # the rest trains
    freeze_encoder(model, False)
    assert not is_encoder_frozen(model)
    model.train()
    assert enc.bn1.training
    model(torch.randn(2, 4, 64, 64)).square().mean().backward()
    assert enc.conv1.weight.grad is not None


@pytest.mark.parametrize(("task", "name", "params", "head"), [
    ("classification", "timm:resnet18", {}, "fc.weight"),
    ("classification", "resnet18", {}, "fc.weight"),
    ("segmentation", "unet", {"encoder": "resnet18"}, "model.segmentation_head.0.weight"),
    ("detection", "fcos_resnet18_fpn", {}, "backbone.fpn.inner_blocks.0.0.weight"),
    ("detection", "fcos_tiny", {"width": 8, "fpn_channels": 32},
     "backbone.fpn.inner_blocks.0.0.weight"),
])
def test_param_groups_scale_the_encoder_lr(task, name, params, head):
    model = build_model(task, name, in_channels=3, num_classes=2, params=params)
    groups = param_groups(model, 1e-3, encoder_lr_scale=0.1)
    assert [g["name"] for g in groups] == ["encoder", "decoder"]
    assert groups[0]["lr"] == pytest.approx(1e-4) and groups[1]["lr"] == 1e-3
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    head_param = model.get_parameter(head)
    assert any(p is head_param for p in groups[1]["params"])
