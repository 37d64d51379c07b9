"""Step fingerprints: what outputs were made from, and the reason a step runs again."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geovision.geo.paths import fingerprint as gdal_fingerprint
from geovision.jobs.fingerprint import (
    RESUME,
    RUN,
    SKIP,
    Change,
    Fingerprint,
    StepState,
    decide,
    differences,
    flatten,
    folder_fingerprint,
    input_fingerprints,
    path_fingerprint,
    read_state,
    record_path,
    relative_values,
)


def _touch(path: Path, text: str, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_a_local_file_is_its_size_and_modification_time(tmp_path: Path) -> None:
    f = _touch(tmp_path / "a.tif", "1234", mtime_ns=1_700_000_000_000_000_000)
    assert path_fingerprint(str(f)) == {"size": 4, "mtime_ns": 1_700_000_000_000_000_000}
    assert path_fingerprint(str(tmp_path / "none.tif")) == {"missing": True}


def test_a_folder_changes_with_any_file_under_it_but_not_with_hidden_ones(tmp_path: Path):
    store = tmp_path / "tiles.zarr"
    _touch(store / "zarr.json", "{}", 10**18)
    _touch(store / "image" / "c" / "0", "abc", 10**18)
    first = folder_fingerprint(store)
    assert first["files"] == 2 and first["size"] == 5
    _touch(store / ".geovision-owned", "mark")               # marks and locks do not count
    _touch(store / ".scratch" / "x", "partial")
    assert folder_fingerprint(store) == first
    _touch(store / "image" / "c" / "0", "abd", 10**18 + 1)    # same size, newer
    assert folder_fingerprint(store)["digest"] != first["digest"]
    assert path_fingerprint(str(store)) == folder_fingerprint(store)


def test_a_virtual_path_is_fingerprinted_by_what_gdal_sees(tmp_path: Path) -> None:
    tif = tmp_path / "scene.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 80)) as dst:
        dst.write(np.arange(64, dtype=np.uint8).reshape(1, 8, 8))
    archive = tmp_path / "scenes.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(tif, "scene.tif")
    vsi = f"/vsizip/{archive}/scene.tif"
    expected = gdal_fingerprint(vsi)
    expected.pop("path")
    assert path_fingerprint(vsi) == expected
    assert expected["container"]["size"] == archive.stat().st_size


def test_globs_are_expanded_so_a_new_match_changes_the_inputs(tmp_path: Path) -> None:
    _touch(tmp_path / "data" / "a.tif", "a", 10**18)
    before = input_fingerprints([str(tmp_path / "data" / "*.tif")], tmp_path)
    assert before == {"data/a.tif": {"size": 1, "mtime_ns": 10**18}}
    _touch(tmp_path / "data" / "b.tif", "bb", 10**18)
    after = input_fingerprints([str(tmp_path / "data" / "*.tif")], tmp_path)
    changes = differences(Fingerprint("tile", {}, before), Fingerprint("tile", {}, after))
    assert [c.describe() for c in changes] == ["input data/b.tif is new"]


def test_options_are_flattened_and_paths_in_the_workdir_made_relative(tmp_path: Path):
    doc = {"name": "seg", "data": {"dataset": str(tmp_path / "tiles.zarr"), "workers": 0},
           "model": {"params": {}}, "scenes": [str(tmp_path / "u" / "*.tif"), "/else/x.tif"]}
    flat = relative_values(flatten(doc), tmp_path)
    assert flat == {"name": "seg", "data.dataset": "tiles.zarr", "data.workers": 0,
                    "model.params": {}, "scenes": ["u/*.tif", "/else/x.tif"]}


def test_changes_name_the_option_as_the_job_file_spells_it() -> None:
    old = Fingerprint("train", {"train.epochs": 30, "train.seed": 0, "gone": 1},
                      {"tiles.zarr": {"files": 3}})
    new = Fingerprint("train", {"train.epochs": 5, "train.seed": 0, "model.params": {"d": 3}},
                      {"tiles.zarr": {"files": 4}})
    assert [c.describe() for c in differences(old, new)] == [
        "train.epochs changed 30 -> 5", 'model.params changed null -> {"d": 3}',
        "gone changed 1 -> null", "input tiles.zarr changed"]
    assert Change("input", "m.pt", {"size": 1}, {"size": 2}, cause="segmenter").describe() == (
        "input m.pt changed (made again by step 'segmenter')")
    assert Change("input", "m.pt", {"size": 1}, {"missing": True}).describe() == (
        "input m.pt is gone")
    assert differences(Fingerprint("tile", {}, {}), Fingerprint("infer", {}, {}))[0].describe(
    ) == "step kind changed tile -> infer"


def _state(tmp_path: Path, fp: Fingerprint, status: str) -> StepState:
    state = StepState(path=record_path(tmp_path, "job", "step"), fingerprint=fp, status=status)
    state.write()
    read = read_state(state.path)
    assert read is not None and read.fingerprint == fp and read.status == status
    return read


@pytest.mark.parametrize(("stored", "complete", "action", "reason"), [
    (None, False, RUN, "not run before"),
    (None, True, RUN, "outputs exist but hold no record of what they were made from"),
    ("complete", True, SKIP, "complete, made with the same options and inputs"),
    ("complete", False, RESUME, "outputs incomplete or removed since; same options and inputs"),
    ("running", False, RESUME, "an earlier run stopped before the end; finishing it (same "
                               "options and inputs)"),
    ("running", True, RESUME, "an earlier run stopped before the end; finishing it (same "
                              "options and inputs)"),
])
def test_a_step_is_skipped_only_when_complete_and_made_from_the_same_things(
        tmp_path: Path, stored: str | None, complete: bool, action: str, reason: str) -> None:
    fp = Fingerprint("tile", {"tile_size": 64}, {"a.tif": {"size": 1, "mtime_ns": 2}})
    state = _state(tmp_path, fp, stored) if stored else None
    decision = decide(state, fp, complete)
    assert (decision.action, decision.reason, decision.changes) == (action, reason, ())


def test_a_changed_option_or_input_runs_the_step_again_whatever_is_on_disk(tmp_path: Path):
    fp = Fingerprint("tile", {"tile_size": 64, "seed": 0}, {"a.tif": {"size": 1}})
    state = _state(tmp_path, fp, "complete")
    now = Fingerprint("tile", {"tile_size": 32, "seed": 0}, {"a.tif": {"size": 2}})
    decision = decide(state, now, True, causes={"a.tif": "scenes"})
    assert decision.action == RUN
    assert decision.reason == ("tile_size changed 64 -> 32; input a.tif changed (made again "
                               "by step 'scenes')")
    assert decision.changes == ("tile_size changed 64 -> 32",
                                "input a.tif changed (made again by step 'scenes')")
    many = Fingerprint("tile", {f"o{i}": i for i in range(7)}, {})
    assert decide(_state(tmp_path, Fingerprint("tile", {}, {}), "complete"), many,
                  True).reason.endswith("; and 3 more")


def test_unreadable_records_count_as_none(tmp_path: Path) -> None:
    path = _touch(record_path(tmp_path, "job", "step"), "not json")
    assert read_state(path) is None
    _touch(path, '{"geovision": {"format": "other"}}')
    assert read_state(path) is None
    assert read_state(tmp_path / "missing.json") is None
