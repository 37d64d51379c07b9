"""Detection trains reliably on a few dozen small objects (issue 12, item 6).

A generated scene like the one a new user tries: 8-20 px buildings, a few dozen training
tiles. ``configs/detection.yaml`` must learn boxes of real size from it on a CPU. Before
the FCOS box head used softplus distances, the ReLU on the distances died on most seeds
(every box zero wide or high, recall 0).
"""

from pathlib import Path

import pytest
import torch
from torchvision.ops import box_iou

from geovision.data import TileDataset, read_info
from geovision.engine import train
from geovision.models import build_model, load_bundle
from geovision.models.detection import FCOSBoxHead
from geovision.synthetic import make_sample
from geovision.tiling import TileOptions, tile

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "detection.yaml"


@pytest.fixture(scope="module")
def small_objects(tmp_path_factory):
    """448 px at 8 m: ~45 buildings of 8-20 px in 64 px tiles (train / val / test)."""
    root = tmp_path_factory.mktemp("small-objects")
    sample = make_sample(root / "scene", size=448, res=8.0, seed=0, nodata_corner=0.0)
    out = root / "tiles.zarr"
    tile(list(sample.rasters), sample.objects, out,
         TileOptions(task="detection", tile_size=64, split="random",
                     fractions=(0.6, 0.2, 0.2), seed=0), quiet=True)
    return out


def _predict(model_path, store, split):
    bundle = load_bundle(model_path)
    info = read_info(store)
    ds = TileDataset(info.path, split, info=info, normalization=bundle.normalization)
    batch = ds.task.collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        return bundle.model(list(batch["image"])), batch["boxes"]


def test_small_objects_get_boxes_of_their_size(small_objects, tmp_path):
    info = read_info(small_objects)
    assert info.task == "detection"
    result = train(CONFIG, overrides=[
        f"data.dataset={small_objects}", f"output={tmp_path}", "data.workers=0",
        "train.previews=0", "train.epochs=12", "train.early_stopping.patience=null"])
    preds, truth = _predict(result.model, small_objects, "test")  # never seen in training
    boxes = torch.cat([p["boxes"] for p in preds])
    sizes = boxes[:, 2:] - boxes[:, :2]
    assert len(boxes) > 0
    assert (sizes > 1).all(), sizes.min(dim=0).values  # no zero-width or zero-height box
    found = total = 0
    for p, t in zip(preds, truth, strict=True):
        total += len(t)
        if len(t) and len(p["boxes"]):
            found += int((box_iou(t, p["boxes"]).max(dim=1).values >= 0.5).sum())
    assert total >= 5
    assert found / total > 0.5, (found, total, result.best)


def _regression_gradient(activation):
    torch.manual_seed(0)
    head = FCOSBoxHead(32, 1, num_convs=1, activation=activation)
    with torch.no_grad():  # a head whose distance outputs all went negative
        head.bbox_reg.weight.zero_()
        head.bbox_reg.bias.fill_(-3.0)
    reg, _ = head([torch.randn(1, 32, 8, 8)])
    (reg - 1.0).square().mean().backward()
    return head.bbox_reg.bias.grad


def test_box_distances_recover_from_negative_outputs():
    """The root cause in one step: ReLU passes no gradient once its input is negative."""
    assert torch.equal(_regression_gradient("relu"), torch.zeros(4))
    assert (_regression_gradient("softplus") < 0).all()  # pushed back up


def test_old_relu_detectors_load_as_relu():
    model = build_model("detection", "fcos_tiny", in_channels=3, num_classes=2,
                        params={"width": 8, "fpn_channels": 32})
    head = model.head.regression_head
    assert int(head.box_activation) == 1  # softplus for new models
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("box_activation")}
    model.load_state_dict(old)  # a bundle written before the buffer existed
    assert int(head.box_activation) == 0
    model.load_state_dict({**old, "head.regression_head.box_activation": torch.tensor(1)})
    assert int(head.box_activation) == 1
