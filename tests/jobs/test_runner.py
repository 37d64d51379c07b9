"""`geovision run`: the example job end to end, idempotent re-runs, failures finished."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
import yaml

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


@pytest.mark.slow  # the whole example job
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


@pytest.mark.slow  # the whole example job
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
