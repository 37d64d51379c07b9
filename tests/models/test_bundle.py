import os

import pytest
import torch

from geovision.errors import InputFileError, ModelFileError
from geovision.formats import BandInfo, bands_from_json, classes_from_json
from geovision.models import build_model, format_bundle_summary, load_bundle, save_bundle

CLASSES = [{"id": 0, "name": "background", "color": "#000000"},
           {"id": 1, "name": "building", "color": "#ff0000"},
           {"id": 2, "name": "water", "color": "#0000ff"}]
BANDS = [{"index": i + 1, "name": n, "dtype": "uint16"} for i, n in enumerate("bgrn")]


def _save(path, model, task, name, params):
    return save_bundle(
        path, model=model, task=task, classes=CLASSES, ignore_index=255, bands=BANDS,
        architecture={"name": name, "params": params},
        normalization={"mean": [1.0, 2.0, 3.0, 4.0], "std": [5.0, 6.0, 7.0, 8.0]},
        tile_size=64, resolution=(10.0, 10.0),
        train={"config": "name: x\n", "epochs": 3, "best": {"val/miou": 0.5},
               "dataset": "/data/t.zarr"})


@pytest.mark.parametrize(("task", "name", "params"), [
    ("segmentation", "unet", {"base_channels": 4, "depth": 2}),
    ("classification", "resnet18", {}),
    ("detection", "fcos_tiny", {"width": 8, "fpn_channels": 32}),
])
def test_round_trip_gives_same_outputs(tmp_path, task, name, params):
    model = build_model(task, name, in_channels=4, num_classes=3, params=params).eval()
    path = _save(tmp_path / "model.pt", model, task, name, params)
    raw = torch.load(path, weights_only=True)  # plain tensors and values only
    assert raw["geovision"]["format"] == "model" and raw["geovision"]["version"] == 1
    assert raw["architecture"] == {"name": name, "params": params}
    bundle = load_bundle(path)
    assert not bundle.model.training
    assert bundle.task == task and raw["classes"] == CLASSES and raw["bands"] == BANDS
    assert bundle.classes == classes_from_json(CLASSES) and bundle.class_names[1] == "building"
    assert bundle.bands == bands_from_json(BANDS) and bundle.bands[3] == BandInfo(4, "n", "uint16")
    assert bundle.normalization["std"] == [5.0, 6.0, 7.0, 8.0]
    assert bundle.tile_size == 64 and bundle.resolution == [10.0, 10.0]
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        if task == "detection":
            a, b = model(list(x)), bundle.model(list(x))
            assert all(torch.equal(p["boxes"], q["boxes"]) for p, q in zip(a, b, strict=True))
        else:
            assert torch.equal(model(x), bundle.model(x))
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind


def test_summary(tmp_path):
    model = build_model("segmentation", "unet", in_channels=4, num_classes=3,
                        params={"base_channels": 4, "depth": 2})
    path = _save(tmp_path / "model.pt", model, "segmentation", "unet",
                 {"base_channels": 4, "depth": 2})
    text = format_bundle_summary(path)
    assert "unet" in text and "building" in text and "val/miou 0.5" in text


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_pickled_code_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"geovision": {"format": "model", "version": 1}, "state_dict": {},
                "payload": _Payload(marker)}, path)
    with pytest.raises(ModelFileError, match="refused"):
        load_bundle(path)
    with pytest.raises(ModelFileError):
        format_bundle_summary(path)
    assert not marker.exists()


def test_refuses_other_files(tmp_path):
    with pytest.raises(InputFileError):
        load_bundle(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(ModelFileError, match=r"junk.pt: a text file, not a model bundle; give "
                                             r"the model.pt that `geovision train` writes"):
        load_bundle(junk)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(ModelFileError, match="not a geovision model bundle"):
        load_bundle(plain)
