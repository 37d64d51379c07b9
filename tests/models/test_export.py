"""`geovision export`: deployable models give the bundle's outputs from raw pixels."""

import sys

import numpy as np
import pytest
import torch

from geovision.cli.main import main
from geovision.errors import InputError, OutputExistsError
from geovision.models import build_model, load_bundle, save_bundle
from geovision.models.export import export_model, read_export_metadata

CLASSES = [{"id": 0, "name": "background", "color": "#000000"},
           {"id": 1, "name": "building", "color": "#ff0000"},
           {"id": 2, "name": "water", "color": "#0000ff"}]
BANDS = [{"index": i + 1, "name": n, "dtype": "uint16"} for i, n in enumerate("bgrn")]
MEAN, STD = [100.0, 120.0, 90.0, 140.0], [20.0, 25.0, 30.0, 35.0]
MODELS = {
    "segmentation": ("unet", {"base_channels": 4, "depth": 2}),
    "classification": ("resnet18", {}),
    # every box scored, so that an untrained detector still returns boxes to compare
    "detection": ("fcos_tiny", {"width": 8, "fpn_channels": 32, "score_thresh": 0.0,
                                "detections_per_img": 20}),
}


def _bundle(folder, task):
    name, params = MODELS[task]
    torch.manual_seed(0)
    model = build_model(task, name, in_channels=4, num_classes=3, params=dict(params)).eval()
    return save_bundle(
        folder / "model.pt", model=model, task=task, classes=CLASSES,
        ignore_index=255, bands=BANDS, architecture={"name": name, "params": params},
        normalization={"mean": MEAN, "std": STD}, tile_size=32, resolution=(10.0, 10.0),
        train={})


@pytest.fixture(scope="module", params=list(MODELS))
def bundle_path(request, tmp_path_factory):
    return _bundle(tmp_path_factory.mktemp(request.param), request.param)


def _raw(n, size):
    return torch.rand(n, 4, size, size, generator=torch.Generator().manual_seed(size)) * 255


def _reference(path, x):
    """What `geovision infer` computes: normalization, model, softmax."""
    bundle = load_bundle(path)
    mean = torch.tensor(MEAN).view(1, -1, 1, 1)
    std = torch.tensor(STD).view(1, -1, 1, 1)
    with torch.no_grad():
        out = bundle.model((x - mean) / std if bundle.task != "detection"
                           else list((x - mean) / std))
    return out if bundle.task == "detection" else torch.softmax(out, dim=1)


def test_torchscript_gives_the_bundles_outputs(bundle_path, tmp_path):
    out = export_model(bundle_path, "torchscript", tmp_path / "model.ts")
    meta = read_export_metadata(out)
    task = meta["task"]
    assert meta["classes"] == CLASSES and meta["bands"] == BANDS and meta["tile_size"] == 32
    assert meta["normalization"] == {"mean": MEAN, "std": STD}
    scripted = torch.jit.load(str(out))
    for x in (_raw(2, 32), _raw(1, 64)):
        ref = _reference(bundle_path, x)
        with torch.no_grad():
            got = scripted(x)
        if task == "detection":
            assert len(got) == len(ref) and sum(len(r["boxes"]) for r in ref) > 0
            for r, g in zip(ref, got, strict=True):
                for key in ("boxes", "scores", "labels"):
                    torch.testing.assert_close(g[key], r[key], atol=1e-4, rtol=1e-4)
                assert (g["labels"] > 0).all()
        else:
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_onnx_gives_the_bundles_outputs(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    bundle_path = _bundle(tmp_path, "segmentation")
    out = export_model(bundle_path, "onnx", tmp_path / "model.onnx")
    assert read_export_metadata(out)["bands"] == BANDS
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for x in (_raw(2, 32), _raw(3, 64)):
        [got] = session.run(None, {"image": x.numpy()})
        np.testing.assert_allclose(got, _reference(bundle_path, x).numpy(), atol=1e-5)


def test_cli_export_writes_beside_the_bundle_and_refuses_to_overwrite(tmp_path):
    bundle_path = _bundle(tmp_path, "classification")
    assert main(["export", str(bundle_path)]) == 0
    out = bundle_path.with_name("model.torchscript.pt")
    assert read_export_metadata(out)["task"] == "classification"
    assert main(["export", str(bundle_path)]) == 2
    with pytest.raises(OutputExistsError):
        export_model(bundle_path)
    assert main(["export", str(bundle_path), "--overwrite"]) == 0


def test_detectors_are_not_exported_to_onnx(tmp_path):
    bundle_path = _bundle(tmp_path, "detection")
    with pytest.raises(InputError, match="--format torchscript"):
        export_model(bundle_path, "onnx", tmp_path / "det.onnx")
    assert not (tmp_path / "det.onnx").exists()


def test_a_file_without_metadata_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(path))
    with pytest.raises(InputError, match="no geovision metadata"):
        read_export_metadata(path)


def test_onnx_without_its_packages_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(InputError, match="pip install onnx onnxscript"):
        export_model(_bundle(tmp_path, "segmentation"), "onnx", tmp_path / "m.onnx")
    assert not list(tmp_path.glob("*.onnx*"))
