"""Job files: checked whole before any work, options spelled as on the command line."""

from __future__ import annotations

import pytest
import yaml

from geovision.errors import ConfigError
from geovision.jobs import load_job

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
