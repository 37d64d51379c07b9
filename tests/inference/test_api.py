"""`infer()`: every task on the scene's grid; bad inputs give one-line errors, write nothing."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import torch

from geovision.cli.main import main
from geovision.errors import InputError, InputFileError, ModelFileError, OutputExistsError
from geovision.geo.grid import Grid
from geovision.inference import InferOptions, infer
from geovision.inference.tasks import for_task
from geovision.synthetic import make_sample
from tests.inference.infer_helpers import write_bundle


@pytest.fixture
def scene(tmp_path: Path) -> str:
    return make_sample(tmp_path / "s", size=64, seed=1).rasters[0]


class RunsCode:
    """Unpickling this creates a file: proof that code from a model file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickled_object_is_refused_without_running_it(tmp_path, scene):
    marker = tmp_path / "code-ran"
    bad = tmp_path / "evil.pt"
    torch.save({"geovision": {"format": "model", "version": 1}, "payload": RunsCode(marker)},
               bad)
    with pytest.raises(ModelFileError, match="refused"):
        infer(bad, scene, tmp_path / "out", quiet=True)
    assert not marker.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(RunsCode(marker)))
    with pytest.raises(ModelFileError):
        infer(raw, scene, tmp_path / "out", quiet=True)
    assert not marker.exists()


def test_corrupt_and_foreign_model_files(tmp_path, seg_bundle, scene):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(seg_bundle.read_bytes()[:2000])
    with pytest.raises(ModelFileError, match="truncated.pt"):
        infer(truncated, scene, tmp_path / "out", quiet=True)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ModelFileError, match="not a geovision model bundle"):
        infer(foreign, scene, tmp_path / "out", quiet=True)
    with pytest.raises(InputFileError, match="not found"):
        infer(tmp_path / "missing.pt", scene, tmp_path / "out", quiet=True)


def test_bad_scenes(tmp_path, seg_bundle):
    three = make_sample(tmp_path / "three", size=64, bands=3).rasters[0]
    with pytest.raises(InputError, match="has 3 band"):
        infer(seg_bundle, three, tmp_path / "out", quiet=True)
    with pytest.raises(InputFileError, match="not found"):
        infer(seg_bundle, tmp_path / "nowhere.tif", tmp_path / "out", quiet=True)
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(InputFileError, match="not a readable raster"):
        infer(seg_bundle, text, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_other_dtype_and_resolution_warn(tmp_path, caplog):
    bundle = write_bundle(tmp_path / "m.pt", "segmentation", "unet",
                          params={"base_channels": 4, "depth": 1}, resolution=[5.0, 5.0])
    scene = make_sample(tmp_path / "s", size=48, dtype="uint16", res=10.0).rasters[0]
    with caplog.at_level("WARNING"):
        infer(bundle, scene, tmp_path / "out", quiet=True)
    text = caplog.text
    assert "uint16" in text and "2x the model's" in text


@pytest.mark.parametrize(("option", "value", "match"), [
    ("overlap", 1.5, "--overlap"), ("blend", "cosine", "--blend"),
    ("batch_size", 0, "--batch-size"), ("crs", "utm", "--crs"), ("device", "tpu", "--device"),
    ("prob_dtype", "float16", "--prob-dtype"), ("window", 4, "--window"),
])
def test_bad_options(tmp_path, seg_bundle, scene, option, value, match):
    with pytest.raises(InputError, match=match):
        infer(seg_bundle, scene, tmp_path / "out", quiet=True, **{option: value})


def test_existing_outputs_need_overwrite(tmp_path, seg_bundle, scene):
    infer(seg_bundle, scene, tmp_path / "out", quiet=True)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        infer(seg_bundle, scene, tmp_path / "out", quiet=True)
    infer(seg_bundle, scene, tmp_path / "out", overwrite=True, quiet=True)


def test_cli_runs_and_reports_errors_in_one_line(tmp_path, seg_bundle, scene, capsys):
    out = tmp_path / "cli"
    assert main(["infer", str(seg_bundle), scene, "-o", str(out), "-q", "--window", "32",
                 "--overlap", "0.5", "--blend", "linear", "--prob-dtype", "float32"]) == 0
    assert (out / "scene.class.tif").exists() and (out / "scene.prob.tif").exists()
    capsys.readouterr()
    assert main(["infer", str(seg_bundle), scene, "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--overwrite" in err
    assert main(["infer", str(tmp_path / "nope.pt"), scene, "-o", str(out)]) == 2
    assert "model file not found" in capsys.readouterr().err


@pytest.fixture(params=["segmentation", "classification", "detection"])
def task_bundle(request, tmp_path) -> tuple[str, Path]:
    """A model bundle of each task (the detector boxes bright pixels: a known answer)."""
    task = request.param
    if task == "segmentation":
        return task, request.getfixturevalue("seg_bundle")
    if task == "classification":
        return task, write_bundle(tmp_path / "cls.pt", task, "resnet18", tile_size=64)
    return task, request.getfixturevalue("bright_detector")


def test_every_task_writes_its_outputs_on_the_scene_grid(task_bundle, tmp_path):
    task, bundle = task_bundle
    scene = make_sample(tmp_path / "s", size=(150, 110), seed=4).rasters[0]
    out = tmp_path / "out"
    [summary] = infer(bundle, scene, out, quiet=True)
    names = for_task(task).output_names("scene", InferOptions())
    assert summary.outputs == tuple(names) and summary.model["task"] == task
    with rasterio.open(scene) as src:
        grid = Grid.of(src)
    stride = summary.parameters["stride"]
    for name in names:
        path = out / name
        if path.suffix == ".tif":
            with rasterio.open(path) as ds:
                expected = grid.coarsened(stride) if for_task(task).cells else grid
                assert (ds.height, ds.width, ds.transform, ds.crs) == (
                    expected.height, expected.width, expected.transform, expected.crs)
        else:
            assert gpd.read_file(path, engine="pyogrio").crs.to_epsg() == 4326
    on_disk = json.loads((out / "scene.json").read_text())
    assert on_disk == summary.to_json()
    legend = [f"{n}.aux.xml" for n in names if n.endswith(".class.tif")]  # GDAL categories
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, *legend, "scene.json"])
    with pytest.raises(OutputExistsError, match="--overwrite"):
        infer(bundle, scene, out, quiet=True)
    [again] = infer(bundle, scene, out, resume=True, quiet=True)
    assert again == summary  # complete already: nothing run, the same summary
