"""`geovision run`: the example job end to end, idempotent re-runs, failures finished."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _example_in(tmp_path: Path, epochs: int = 1) -> Path:
    """The shipped example job (and the script of its command step), its workdir in tmp_path."""
    doc = yaml.safe_load((ROOT / "pipelines" / "example.yaml").read_text())
    doc["workdir"] = str(tmp_path / "work")
    for step in doc["steps"]:
        if "train" in step:
            step["train"]["config"] = str(ROOT / "configs" / "segmentation.yaml")
            step["train"]["set"]["train.epochs"] = epochs
    shutil.copy(ROOT / "pipelines" / "class_areas.py", tmp_path / "class_areas.py")
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
    assert [s["status"] for s in report["steps"]] == ["done"] * 8
    assert (work / "tiles.zarr" / "zarr.json").exists()
    assert (work / "runs" / "segmenter" / "model.pt").exists()
    assert (work / "evaluation" / "metrics.json").exists()
    assert {p.name for p in (work / "score").iterdir()} == {
        "score.json", "report.md", "confusion_matrix.png", ".geovision-owned"}
    assert (work / "areas.csv").read_text().startswith("class_id,class,pixels,area\n")
    with rasterio.open(work / "predictions" / "unseen.class.tif") as out, \
            rasterio.open(work / "unseen" / "unseen.tif") as scene:
        assert (out.crs, out.transform, out.shape) == (scene.crs, scene.transform, scene.shape)


@pytest.mark.slow  # the whole example job
def test_rerunning_a_finished_job_does_nothing(finished_example):
    job, work = finished_example
    stamps = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()
              and p.name not in ("example.report.json", "example.log")}
    proc = _run(job)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((work / "example.report.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["skipped"] * 8
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.slow  # trains again
def test_a_changed_training_option_reruns_training_and_what_follows(finished_example):
    job, work = finished_example
    _example_in(job.parent, epochs=2)
    proc = _run(job)
    assert proc.returncode == 0, proc.stderr
    steps = json.loads((work / "example.report.json").read_text())["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [
        ("scenes", "skipped"), ("unseen", "skipped"), ("tiles", "skipped"),
        ("segmenter", "done"), ("predict", "done"), ("score", "done"), ("evaluate", "done"),
        ("areas", "done")]
    assert steps[3]["reason"] == "train.epochs changed 1 -> 2"
    assert steps[4]["reason"] == ("input runs/segmenter/model.pt changed (made again by step "
                                  "'segmenter')")
    assert steps[5]["reason"] == ("input predictions/unseen.class.tif changed (made again by "
                                  "step 'predict')")
    log = (work / "example.log").read_text()
    assert "[4/8] segmenter (train): running: train.epochs changed 1 -> 2" in log
    proc = _run(job)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((work / "example.report.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["skipped"] * 8


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


# ------------------------------------------------------------------ fingerprints and skipping

def _write_job(path: Path, steps: list, name: str = "job") -> Path:
    path.write_text(yaml.safe_dump({"name": name, "steps": steps}, sort_keys=False))
    return path


def _quiet_run(job: Path):
    from geovision.jobs import run_job

    lines: list[str] = []
    report = run_job(job, quiet=True, echo=lines.append)
    return report, lines


def _why(report) -> list[tuple[str, str, str]]:
    return [(s.name, s.action, s.reason) for s in report.steps]


WRITE_SIZE = ("import pathlib, sys; print('hello from', sys.argv[1]); "
              "print('to stderr', file=sys.stderr); out = pathlib.Path('out/size.txt'); "
              "out.parent.mkdir(exist_ok=True); "
              "out.write_text(str(pathlib.Path(sys.argv[1]).stat().st_size))")


def test_steps_run_again_only_when_an_option_or_an_input_changed(tmp_path):
    steps = [{"name": "data", "generate": {"output": "data", "size": 32, "seed": 1}},
             {"name": "size", "command": {
                 "argv": ["{python}", "-c", WRITE_SIZE, "data/scene.tif"],
                 "inputs": ["data/scene.tif"], "outputs": ["out/size.txt"]}}]
    job = _write_job(tmp_path / "job.yaml", steps)
    report, lines = _quiet_run(job)
    assert _why(report) == [("data", "run", "not run before"), ("size", "run", "not run before")]
    assert lines[1] == "[1/2] data (generate): running: not run before"
    out = tmp_path / "out" / "size.txt"
    assert out.read_text() == str((tmp_path / "data" / "scene.tif").stat().st_size)
    log = (tmp_path / "job.log").read_text()
    assert f"$ {sys.executable} -c " in log
    assert "hello from data/scene.tif\nto stderr\n" in log   # the command's output, in order
    stamp = out.stat().st_mtime_ns

    # nothing changed: nothing runs, nothing is written
    report, lines = _quiet_run(job)
    same = "complete, made with the same options and inputs"
    assert _why(report) == [("data", "skip", same), ("size", "skip", same)]
    assert lines[-1].startswith("job job: 2 steps (0 ran, 2 skipped) in ")
    assert out.stat().st_mtime_ns == stamp

    # an option of the first step: it runs, and so does the step that reads its output
    steps[0]["generate"]["seed"] = 2
    report, _ = _quiet_run(_write_job(job, steps))
    assert _why(report) == [
        ("data", "run", "seed changed 1 -> 2"),
        ("size", "run", "input data/scene.tif changed (made again by step 'data')")]
    saved = json.loads((tmp_path / "job.report.json").read_text())
    assert saved["steps"][0]["changes"] == ["seed changed 1 -> 2"]
    assert saved["steps"][0]["options"]["seed"] == 2
    assert saved["steps"][0]["options"]["output"] == "data"

    # the last step's own argv: only it runs
    steps[1]["command"]["argv"][-1] = "data/labels.gpkg"
    report, _ = _quiet_run(_write_job(job, steps))
    assert [(s.name, s.action) for s in report.steps] == [("data", "skip"), ("size", "run")]
    assert report.steps[1].reason.startswith('argv changed ["{python}", "-c", ')
    assert out.read_text() == str((tmp_path / "data" / "labels.gpkg").stat().st_size)

    # outputs removed by hand: the step finishes them (same fingerprint)
    out.unlink()
    report, _ = _quiet_run(job)
    assert _why(report)[1] == ("size", "resume", "outputs incomplete or removed since; same "
                                                 "options and inputs")
    assert out.exists()


def test_a_changed_tile_option_reruns_the_store_and_what_reads_it(tmp_path):
    from geovision.data.info import read_info

    steps = [{"name": "data", "generate": {"output": "data", "size": 96, "seed": 3}},
             {"name": "tiles", "tile": {"rasters": "data/*.tif", "labels": "data/labels.gpkg",
                                        "output": "tiles.zarr", "tile_size": 32}},
             {"name": "count", "command": {
                 "argv": ["{python}", "-c", "import pathlib; pathlib.Path('n.txt').write_text("
                          "str(len(list(pathlib.Path('tiles.zarr').rglob('*')))))"],
                 "inputs": ["tiles.zarr"], "outputs": ["n.txt"]}}]
    job = _write_job(tmp_path / "job.yaml", steps)
    _quiet_run(job)
    assert read_info(tmp_path / "tiles.zarr").tile_size == 32
    steps[1]["tile"]["tile_size"] = 16
    report, _ = _quiet_run(_write_job(job, steps))
    assert _why(report) == [
        ("data", "skip", "complete, made with the same options and inputs"),
        ("tiles", "run", "tile_size changed 32 -> 16"),
        ("count", "run", "input tiles.zarr changed (made again by step 'tiles')")]
    assert read_info(tmp_path / "tiles.zarr").tile_size == 16   # the store was replaced
    report, _ = _quiet_run(job)
    assert [s.action for s in report.steps] == ["skip"] * 3


def test_a_failing_command_stops_the_job_with_one_line_and_is_finished_later(tmp_path):
    flag = tmp_path / "ready"
    code = (f"import pathlib, sys; print('boom'); ok = pathlib.Path({str(flag)!r}).exists(); "
            "ok and pathlib.Path('done.txt').write_text('x'); sys.exit(0 if ok else 3)")
    job = _write_job(tmp_path / "job.yaml", [
        {"name": "mask", "command": {"argv": ["{python}", "-c", code],
                                     "outputs": ["done.txt"]}}])
    proc = _run(job)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("geovision: error: step 'mask' (command): ")
    assert err.endswith(f" exited with code 3; its output is in {tmp_path / 'job.log'}")
    assert "boom" in (tmp_path / "job.log").read_text()
    report = json.loads((tmp_path / "job.report.json").read_text())
    assert report["status"] == "failed" and "exited with code 3" in report["steps"][0]["error"]

    flag.write_text("")
    report, _ = _quiet_run(job)
    assert _why(report) == [("mask", "resume", "an earlier run stopped before the end; "
                                               "finishing it (same options and inputs)")]
    assert (tmp_path / "done.txt").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["no-such-program-geovision"], "step 'c' (command): cannot run no-such-program-geovision: "
                                    "No such file or directory (argv[0] is looked up on PATH"),
    (["{python}", "-c", "pass"], "step 'c' (command): exited with code 0 but did not write "
                                 "out.txt (its declared outputs)"),
])
def test_a_command_that_cannot_run_or_writes_nothing_is_an_error(tmp_path, argv, message):
    from geovision.jobs.runner import StepFailedError

    job = _write_job(tmp_path / "job.yaml", [
        {"name": "c", "command": {"argv": argv, "outputs": ["out.txt"]}}])
    with pytest.raises(StepFailedError) as err:
        _quiet_run(job)
    assert str(err.value).startswith(message)


def test_a_command_without_outputs_runs_every_time(tmp_path):
    job = _write_job(tmp_path / "job.yaml", [
        {"command": {"argv": ["{python}", "-c", "print('checked')"]}}])
    for _ in range(2):
        report, _ = _quiet_run(job)
        assert _why(report) == [("command-1", "run",
                                 "declares no outputs, so it runs every time")]
    assert (tmp_path / "job.log").read_text().count("\nchecked\n") == 2


def test_a_score_step_scores_and_reruns_when_an_option_changes(luxembourg, tmp_path):
    from geovision.evaluation import ScoreOptions, score
    from tests.evaluation.score_helpers import lux_map

    lux = lux_map(luxembourg, tmp_path)
    step = {"predictions": str(lux.prediction), "labels": str(lux.labels),
            "class_field": "NAME_1", "replicates": 0, "output": "score"}
    job = _write_job(tmp_path / "job.yaml", [{"name": "accuracy", "score": step}])
    report, _ = _quiet_run(job)
    assert report.steps[0].status == "done"
    doc = json.loads((tmp_path / "score" / "score.json").read_text())
    direct = score(lux.prediction, lux.labels, tmp_path / "direct",
                   ScoreOptions(class_field="NAME_1", replicates=0)).document
    assert doc["confusion_matrix"] == direct["confusion_matrix"]
    assert {p.name for p in (tmp_path / "score").iterdir()} == {
        "score.json", "report.md", "confusion_matrix.png", ".geovision-owned"}
    report, _ = _quiet_run(job)
    assert report.steps[0].action == "skip"
    step["unlabeled"] = "ignore"
    report, _ = _quiet_run(_write_job(job, [{"name": "accuracy", "score": step}]))
    assert _why(report) == [("accuracy", "run", "unlabeled changed background -> ignore")]
    assert json.loads((tmp_path / "score" / "score.json").read_text())["options"][
        "unlabeled"] == "ignore"
