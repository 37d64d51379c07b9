import pytest
import torch

from geovision.errors import InputError
from geovision.models import architectures, build_model
from geovision.models.unet import UNet


@pytest.mark.parametrize("task", ["classification", "segmentation", "detection"])
def test_every_task_lists_architectures(task):
    names = architectures(task)
    assert names and names == sorted(names)


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(InputError) as err:
        build_model("segmentation", "unte", in_channels=3, num_classes=2)
    msg = str(err.value)
    assert "did you mean 'unet'" in msg
    assert "deeplabv3_resnet50" in msg and "lraspp_mobilenet_v3_large" in msg


def test_unknown_task():
    with pytest.raises(InputError, match="tasks are"):
        architectures("panoptic")


@pytest.mark.parametrize(("task", "name"), [("classification", "resnet18"),
                                            ("classification", "mobilenet_v3_small"),
                                            ("segmentation", "unet"),
                                            ("segmentation", "lraspp_mobilenet_v3_large")])
@pytest.mark.parametrize("bands", [1, 5])
def test_output_shapes_for_any_band_count(task, name, bands):
    model = build_model(task, name, in_channels=bands, num_classes=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, bands, 64, 64))
    assert out.shape == ((2, 4) if task == "classification" else (2, 4, 64, 64))


@pytest.mark.parametrize(("h", "w"), [(37, 50), (64, 64), (17, 9)])
def test_unet_accepts_any_size(h, w):
    model = UNet(3, 2, base_channels=4, depth=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, h, w)).shape == (1, 2, h, w)


@pytest.mark.parametrize("name", ["fcos_tiny", "fasterrcnn_mobilenet_v3_large_fpn"])
def test_detector_keeps_input_pixel_coordinates(name):
    model = build_model("detection", name, in_channels=6, num_classes=3,
                        params={"score_thresh": 0.0} if name == "fcos_tiny" else
                        {"box_score_thresh": 0.0}).eval()
    assert model.transform.normalize(torch.ones(6, 8, 8)).equal(torch.ones(6, 8, 8))
    with torch.no_grad():
        out = model([torch.randn(6, 40, 56), torch.randn(6, 40, 56)])
    assert len(out) == 2 and set(out[0]) == {"boxes", "scores", "labels"}
    boxes = out[0]["boxes"]
    assert len(boxes) > 0
    assert boxes[:, 2].max() <= 56 and boxes[:, 3].max() <= 40  # clipped to the input, no resize
    assert (out[0]["labels"] >= 1).all()
