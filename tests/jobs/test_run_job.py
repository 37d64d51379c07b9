"""`geovision run`: the example job end to end, idempotent re-runs, and bad job files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
import yaml

from geovision.errors import ConfigError
from geovision.jobs import load_job

ROOT = Path(__file__).resolve().parents[2]


def _example_in(tmp_path: Path) -> Path:
    """The shipped example job, with its workdir moved into tmp_path."""
    doc = yaml.safe_load((ROOT / "pipelines" / "example.yaml").read_text())
    doc["workdir"] = str(tmp_path / "work")
    for step in doc["steps"]:
        if "train" in step:
            step["train"]["config"] = str(ROOT / "configs" / "segmentation.yaml")
            step["train"]["set"]["train.epochs"] = 1
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _run(job: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geovision", "run", str(job), "-q", *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def finished_example(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("job")
    job = _example_in(tmp)
    proc = _run(job)
    assert proc.returncode == 0, proc.stderr
    return job, tmp / "work"


def test_example_job_writes_every_output(finished_example):
    _, work = finished_example
    report = json.loads((work / "example.report.json").read_text())
    assert report["status"] == "done"
    assert [s["status"] for s in report["steps"]] == ["done"] * 6
    assert (work / "tiles.zarr" / "zarr.json").exists()
    assert (work / "runs" / "segmenter" / "model.pt").exists()
    assert (work / "evaluation" / "metrics.json").exists()
    with rasterio.open(work / "predictions" / "unseen.class.tif") as out, \
            rasterio.open(work / "unseen" / "unseen.tif") as scene:
        assert (out.crs, out.transform, out.shape) == (scene.crs, scene.transform, scene.shape)


def test_rerunning_a_finished_job_does_nothing(finished_example):
    job, work = finished_example
    stamps = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()
              and p.name != "example.report.json"}
    proc = _run(job)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((work / "example.report.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["skipped"] * 6
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_rerunning_a_failed_job_finishes_it(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"steps": [
        {"generate": {"output": "data", "size": 128, "seed": 2}},
        {"tile": {"rasters": ["data/*.tif"], "labels": "data/labels.gpkg",
                  "output": "t.zarr", "class_field": "kind", "tile_size": 256}},
    ]}))
    first = _run(job)
    assert first.returncode == 2
    assert "--tile-size 256 is larger than every raster" in first.stderr
    report = json.loads((tmp_path / "job.report.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["done", "failed"]
    assert report["status"] == "failed" and "larger than every raster" in report["steps"][1][
        "error"]
    doc = yaml.safe_load(job.read_text())
    doc["steps"][1]["tile"]["tile_size"] = 64
    job.write_text(yaml.safe_dump(doc))
    second = _run(job)
    assert second.returncode == 0, second.stderr
    report = json.loads((tmp_path / "job.report.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["skipped", "done"]


BAD_JOBS = {
    "unknown step": ({"steps": [{"tiles": {"output": "x"}}]},
                     "step 1 (tiles): unknown step kind 'tiles' (did you mean 'tile'?)"),
    "unknown option": ({"steps": [{"generate": {"output": "d", "sise": 3}}]},
                       "'generate' has no option 'sise' (did you mean 'size'?)"),
    "missing option": ({"steps": [{"infer": {"model": "m.pt"}}]},
                       "'infer' needs option 'scenes'"),
    "glob matches nothing": (
        {"steps": [{"tile": {"rasters": ["nowhere/*.tif"], "labels": "l.gpkg",
                             "output": "t.zarr"}}]},
        "rasters '{tmp}/nowhere/*.tif' matches no file (and no earlier step makes it)"),
    "unknown top-level key": ({"step": []}, "unknown key 'step' (did you mean 'steps'?)"),
    "two kinds in one step": ({"steps": [{"tile": {}, "infer": {}}]},
                              "give exactly one step kind"),
}


@pytest.mark.parametrize("case", sorted(BAD_JOBS))
def test_bad_job_files_fail_before_any_work(case, tmp_path):
    doc, message = BAD_JOBS[case]
    job = tmp_path / "bad.yaml"
    job.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_job(job)
    assert message.format(tmp=tmp_path) in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_bad_job_file_on_the_command_line(tmp_path):
    job = tmp_path / "bad.yaml"
    job.write_text(yaml.safe_dump({"steps": [{"generate": {"output": "d", "sise": 3}},
                                             {"tiles": {}}]}))
    proc = _run(job)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "no option 'sise'" in lines[0] and "unknown step kind 'tiles'" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_inputs_made_by_an_earlier_step_are_accepted(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"steps": [
        {"generate": {"output": "data"}},
        {"tile": {"rasters": ["data/*.tif"], "labels": "data/labels.gpkg",
                  "output": "t.zarr"}},
    ]}))
    loaded = load_job(job)
    assert [s.kind for s in loaded.steps] == ["generate", "tile"]
    assert loaded.steps[1].options["rasters"] == [str(tmp_path / "data" / "*.tif")]


def test_job_options_take_the_command_line_spelling_and_yaml_lists(tmp_path):
    job = tmp_path / "job.yaml"
    common = {"rasters": ["data/*.tif"], "labels": "data/labels.gpkg"}
    job.write_text(yaml.safe_dump({"steps": [
        {"generate": {"output": "data", "crss": "EPSG:32633,EPSG:3035"}},
        {"tile": {**common, "output": "a.zarr", "fractions": "0.6,0.2,0.2", "bands": "3,2,1"}},
        {"tile": {**common, "output": "b.zarr", "fractions": [0.6, 0.2, 0.2], "bands": [3, 2, 1],
                  "tile_size": "64"}},
        {"infer": {"model": "b.zarr", "scenes": "data/scene.tif", "overlap": "0.5"}},
    ]}))
    steps = load_job(job).steps
    assert steps[0].options["crss"] == ("EPSG:32633", "EPSG:3035")
    for step in steps[1:3]:
        assert step.options["fractions"] == (0.6, 0.2, 0.2)
        assert step.options["bands"] == (3, 2, 1)
    assert steps[2].options["tile_size"] == 64 and steps[3].options["overlap"] == 0.5


def test_job_option_values_are_checked_before_the_job_starts(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"steps": [
        {"generate": {"output": "data"}},
        {"tile": {"rasters": ["data/*.tif"], "labels": "data/labels.gpkg", "output": "t.zarr",
                  "fractions": "0.6,0.2"}},
        {"infer": {"model": "t.zarr", "scenes": "data/*.tif", "blend": "cosine"}},
    ]}))
    with pytest.raises(ConfigError) as err:
        load_job(job)
    text = str(err.value)
    assert "step 2 (tile): --fractions: '0.6,0.2' is not 3 comma-separated numbers" in text
    assert "step 3 (infer): --blend: 'cosine' is not a blend" in text
    assert not (tmp_path / "data").exists()
