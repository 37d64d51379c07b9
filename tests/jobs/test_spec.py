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


def _job(tmp_path, steps, **top):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({**top, "steps": steps}))
    return job


def test_score_steps_take_the_score_options_checked_before_the_job_starts(tmp_path):
    (tmp_path / "aoi.gpkg").write_text("")
    common = {"predictions": "p/scene.class.tif", "labels": "unseen/labels.gpkg",
              "output": "score"}
    steps = [{"generate": {"output": "unseen"}},
             {"command": {"argv": ["true"], "outputs": ["p/scene.class.tif"]}},
             {"score": {**common, "class_field": "kind", "aoi": "aoi.gpkg",
                        "replicates": "10", "bootstrap_block": 32}}]
    step = load_job(_job(tmp_path, steps)).steps[2]
    assert step.options["replicates"] == 10 and step.options["aoi"] == str(tmp_path / "aoi.gpkg")
    assert step.options["predictions"] == str(tmp_path / "p" / "scene.class.tif")
    bad = [*steps[:2], {"score": {**common, "unlabeled": "none", "replicates": -1,
                                  "class_map": "nowhere.yaml", "bins": 3}}]
    with pytest.raises(ConfigError) as err:
        load_job(_job(tmp_path, bad))
    text = str(err.value)
    assert "step 3 (score): 'score' has no option 'bins'" in text
    assert ("step 3 (score): --unlabeled: 'none' is not a choice for unlabeled pixels; choose "
            "one of background, ignore") in text
    assert "step 3 (score): --replicates: -1 must be at least 0" in text
    assert (f"step 3 (score): class_map '{tmp_path}/nowhere.yaml' matches no file (and no "
            "earlier step makes it)") in text


def test_command_steps_are_argv_lists_with_outputs_inside_the_workdir(tmp_path):
    (tmp_path / "in.txt").write_text("x")
    ok = load_job(_job(tmp_path, [
        {"name": "copy", "command": {"argv": ["cp", "in.txt", "out/a.txt"], "inputs": "in.txt",
                                     "outputs": ["out/a.txt"]}},
        {"command": {"argv": ["{python}", "-c", 1], "inputs": ["out/a.txt"]}},
    ]))
    first, second = ok.steps
    assert first.options == {"argv": ["cp", "in.txt", "out/a.txt"],
                             "inputs": [str(tmp_path / "in.txt")],
                             "outputs": [str(tmp_path / "out" / "a.txt")]}
    assert second.name == "command-2" and second.options["argv"] == ["{python}", "-c", "1"]
    assert second.options["outputs"] == []
    with pytest.raises(ConfigError) as err:
        load_job(_job(tmp_path, [
            {"command": {"argv": [], "outputs": ["../escape.txt"]}},
            {"command": {"argv": "ls", "outputs": ["/abs.txt"], "inputs": ["missing.txt"]}},
            {"command": {"argv": [["nested"]], "outputs": {"a": 1}}},
        ]))
    text = str(err.value)
    assert "step 1 (command): argv is a non-empty list of words" in text
    assert (f"step 1 (command): outputs: '../escape.txt' must be a relative path inside "
            f"{tmp_path}/") in text
    assert "step 2 (command): outputs: '/abs.txt' must be a relative path inside" in text
    assert f"step 2 (command): inputs '{tmp_path}/missing.txt' matches no file" in text
    assert "step 3 (command): outputs is a list of paths" in text


def test_names_become_file_names_so_they_must_be_plain(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_job(_job(tmp_path, [{"name": "a/b", "generate": {"output": "d"}}], name=".."))
    text = str(err.value)
    assert "name: '..' must be a plain file name inside" in text
    assert "step 1 (a/b): name: 'a/b' must be a plain file name inside" in text


def test_default_names_count_each_kind_so_inserting_a_step_keeps_them(tmp_path):
    steps = [{"generate": {"output": "a"}}, {"generate": {"output": "b"}},
             {"tile": {"rasters": "a/*.tif", "labels": "a/labels.gpkg", "output": "t.zarr"}},
             {"infer": {"model": "m.pt", "scenes": "b/*.tif"}}]
    (tmp_path / "m.pt").write_text("")
    names = [s.name for s in load_job(_job(tmp_path, steps)).steps]
    assert names == ["generate-1", "generate-2", "tile-1", "infer-1"]
    inserted = [{"command": {"argv": ["true"]}}, *steps]
    assert [s.name for s in load_job(_job(tmp_path, inserted)).steps][1:] == names
    infer = load_job(_job(tmp_path, steps)).steps[3]
    assert infer.options["output"] == str(tmp_path / "predictions")  # in the workdir


def test_tile_steps_resolve_their_class_map_and_aoi_files(tmp_path):
    (tmp_path / "classes.yaml").write_text("classes: {2: low}\n")
    (tmp_path / "aoi.gpkg").write_text("")
    common = {"rasters": ["unseen/scene.tif"], "labels": "unseen/labels.gpkg",
              "output": "t.zarr", "class_field": "kind"}
    steps = [{"generate": {"output": "unseen"}},
             {"tile": {**common, "class_map": "classes.yaml", "aoi": "aoi.gpkg",
                       "unlabeled": "ignore", "buffer": "2.5"}}]
    step = load_job(_job(tmp_path, steps)).steps[1]
    assert step.options["class_map"] == str(tmp_path / "classes.yaml")
    assert step.options["aoi"] == str(tmp_path / "aoi.gpkg")
    assert step.options["unlabeled"] == "ignore" and step.options["buffer"] == 2.5
    bad = [steps[0], {"tile": {**common, "class_map": "nowhere.yaml", "buffer": 0}}]
    with pytest.raises(ConfigError) as err:
        load_job(_job(tmp_path, bad))
    text = str(err.value)
    assert (f"step 2 (tile): class_map '{tmp_path}/nowhere.yaml' matches no file (and no "
            "earlier step makes it)") in text
    assert "step 2 (tile): --buffer: 0.0 must be more than 0" in text
