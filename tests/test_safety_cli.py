"""Issue #10 end to end: every case, typed as the issue describes, answers with one line.

Each test runs the real command line in a child process in a scratch folder and asserts: exit
code 2, exactly one line on stderr (naming the file or option and the fix), the user's files
byte for byte untouched, and nothing half-written left behind (no ``.partial``, no lock file,
no new folder).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import shapely

from tests.safety_helpers import child_env, hold_lock, readonly_folder, run_restricted

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "segmentation.yaml")
T = ["--class-field", "kind", "--tile-size", "32", "-q"]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample (128 px), its tile store and a tiny model bundle, shared read-only."""
    from geovision.options.tile import TileOptions
    from geovision.synthetic import make_sample
    from geovision.tiling import tile
    from tests.inference.infer_helpers import TINY_UNET, write_bundle

    root = tmp_path_factory.mktemp("safety")
    sample = make_sample(root / "sample", size=128)
    tile([sample.rasters[0]], sample.labels, root / "seg.zarr",
         TileOptions(class_field="kind", tile_size=32, block_size=32), quiet=True)
    write_bundle(root / "model.pt", "segmentation", "unet", params=TINY_UNET, tile_size=32)
    return root


def gv(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``geovision ARGV...`` in ``cwd``."""
    return subprocess.run([sys.executable, "-m", "geovision", *argv], capture_output=True,
                          text=True, cwd=cwd, env=child_env(), timeout=300)


def gv_restricted(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``geovision ARGV...`` in a process that file permissions stop, root or not."""
    code = f"import sys\nfrom geovision.cli.main import main\nsys.exit(main({list(argv)!r}))"
    return run_restricted(code, cwd)


def tree(path: Path) -> dict[str, str]:
    """Every entry under ``path`` (hidden ones included): its content hash, or ``dir``."""
    out: dict[str, str] = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        if p.is_symlink():
            out[rel] = f"link:{os.readlink(p)}"
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(proc: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2 and exactly one line on stderr: ``geovision: error: MESSAGE``."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"geovision: error: {message}"], proc.stderr


@pytest.fixture()
def work(tmp_path: Path, base: Path) -> Path:
    """A scratch folder holding a copy of the sample, as a user's working folder."""
    shutil.copytree(base / "sample", tmp_path / "sample")
    return tmp_path


# ---------------------------------------------------------------- 1: --overwrite deletes

def test_1a_tile_overwrite_never_deletes_a_users_folder(work: Path) -> None:
    (work / "thesis").mkdir()
    (work / "thesis" / "thesis.txt").write_text("four years of work\n")
    before = tree(work)
    proc = gv(work, "tile", "sample/", "sample/labels.gpkg", *T, "-o", "thesis", "--overwrite")
    refused(proc, "thesis/: holds thesis.txt (not written by geovision); nothing was "
                  "deleted; choose another --output or move it away")
    assert tree(work) == before


def test_1b_tile_overwrite_never_deletes_the_folder_of_its_inputs(work: Path) -> None:
    before = tree(work)
    proc = gv(work, "tile", "sample/scene.tif", "sample/labels.gpkg", *T, "-o", "sample",
              "--overwrite")
    refused(proc, "sample/: holds sample/scene.tif, an input of this command; choose another "
                  "--output")
    assert tree(work) == before


def test_1c_tile_overwrite_never_deletes_a_parent_of_the_current_folder(work: Path) -> None:
    (work / "thesis.txt").write_text("mine\n")
    inner = work / "work"
    inner.mkdir()
    shutil.move(work / "sample", inner / "sample")
    before = tree(work)
    proc = gv(inner, "tile", "sample/scene.tif", "sample/labels.gpkg", *T, "-o", "..",
              "--overwrite")
    refused(proc, "../: a parent of the current folder; geovision never replaces it; choose "
                  "another --output")
    proc = gv(inner, "tile", "sample/scene.tif", "sample/labels.gpkg", *T, "-o", ".",
              "--overwrite")
    refused(proc, "./: the current folder; geovision never replaces it; choose another "
                  "--output")
    assert tree(work) == before


def test_1e_tile_overwrite_never_deletes_through_a_link(work: Path) -> None:
    (work / "user").mkdir()
    (work / "user" / "f.txt").write_text("mine\n")
    (work / "link.zarr").symlink_to("user")
    before = tree(work)
    proc = gv(work, "tile", "sample/scene.tif", "sample/labels.gpkg", *T, "-o", "link.zarr",
              "--overwrite")
    refused(proc, "link.zarr: a symbolic link (to user); geovision never deletes through a "
                  "link; give the real path or another --output")
    assert tree(work) == before


def test_tile_overwrite_replaces_a_store_geovision_wrote(work: Path) -> None:
    for _ in range(2):
        proc = gv(work, "tile", "sample/scene.tif", "sample/labels.gpkg", *T, "-o", "t.zarr",
                  "--overwrite")
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["sample", "t.zarr"]


def test_1f_export_overwrite_never_replaces_a_users_file(work: Path, base: Path) -> None:
    (work / "thesis.txt").write_text("mine\n")
    before = tree(work)
    proc = gv(work, "export", str(base / "model.pt"), "-o", "thesis.txt", "--overwrite")
    refused(proc, "thesis.txt: not written by geovision; nothing was deleted; choose another "
                  "--output or move it away")
    assert tree(work) == before


def test_1g_evaluate_never_writes_into_a_users_folder(work: Path, base: Path) -> None:
    (work / "myeval").mkdir()
    (work / "myeval" / "metrics.json").write_text('{"mine": 1}\n')
    before = tree(work)
    proc = gv(work, "evaluate", str(base / "model.pt"), str(base / "seg.zarr"), "-o", "myeval")
    refused(proc, "myeval/: holds metrics.json, which geovision did not write; nothing was "
                  "written; give an empty or new folder with --output")
    assert tree(work) == before


# ---------------------------------------------------------------- 2: session names

@pytest.mark.parametrize(("name", "extra"), [
    ("..", []), ("..", ["--overwrite"]), ("", ["--overwrite"]), ('""', []),
    ("../../escape", []), ("a/b", []), (".", ["--overwrite"])])
def test_2_training_session_names_stay_inside_output(work: Path, base: Path, name: str,
                                                     extra: list[str]) -> None:
    (work / "notes.txt").write_text("mine\n")
    (work / "runs" / "other").mkdir(parents=True)
    (work / "runs" / "other" / "model.pt").write_text("another session\n")
    before = tree(work)
    proc = gv(work, "train", CONFIG, "--set", f"data.dataset={base / 'seg.zarr'}", "--set",
              f"name={name}", "-q", *extra)
    shown = "" if name == '""' else name
    refused(proc, f"name: {shown!r} must be a plain folder name inside runs/")
    assert tree(work) == before


# ---------------------------------------------------------------- 3: generate

def test_3_generate_never_replaces_a_users_files(tmp_path: Path) -> None:
    (tmp_path / "mydata").mkdir()
    (tmp_path / "mydata" / "scene.tif").write_text("my scene\n")
    (tmp_path / "mydata" / "labels.gpkg").write_text("my labels\n")
    before = tree(tmp_path)
    proc = gv(tmp_path, "generate", "mydata", "--size", "64")
    refused(proc, "mydata/scene.tif: exists and geovision did not write it; nothing was "
                  "written; give an empty or new OUT_DIR, or move it away")
    assert tree(tmp_path) == before


def test_generate_again_replaces_only_its_own_sample(tmp_path: Path) -> None:
    assert gv(tmp_path, "generate", "s", "--size", "32").returncode == 0
    proc = gv(tmp_path, "generate", "s", "--size", "32", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "replacing scene.tif, labels.gpkg, objects.gpkg" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        ".geovision-owned", "labels.gpkg", "objects.gpkg", "scene.tif"]


# ---------------------------------------------------------------- 4-7: labels

def _grid_labels(raster: Path, n: int, path: Path) -> Path:
    """``n`` square polygons over the raster, each with its own ``kind``."""
    with rasterio.open(raster) as src:
        b, crs = src.bounds, src.crs
    k = math.ceil(math.sqrt(n))
    w, h = (b.right - b.left) / k, (b.top - b.bottom) / k
    geoms = [shapely.box(b.left + (i % k) * w, b.bottom + (i // k) * h,
                         b.left + (i % k + 1) * w, b.bottom + (i // k + 1) * h)
             for i in range(n)]
    gpd.GeoDataFrame({"kind": [f"c{i:03d}" for i in range(n)]}, geometry=geoms,
                     crs=crs).to_file(path)
    return path


@pytest.mark.parametrize("n", [255, 300])
def test_4_more_classes_than_fit_are_refused(work: Path, n: int) -> None:
    _grid_labels(work / "sample" / "scene.tif", n, work / f"l{n}.gpkg")
    before = tree(work)
    proc = gv(work, "tile", "sample/scene.tif", f"l{n}.gpkg", *T, "-o", "t.zarr")
    refused(proc, f"l{n}.gpkg: field 'kind': {n} distinct values; at most 254 classes fit in "
                  "the class raster (id 0 is background, 255 is ignore_index); merge classes "
                  "with --class-map FILE (several values may share an id)")
    assert tree(work) == before


def test_5_a_split_block_smaller_than_a_tile_is_refused(work: Path) -> None:
    before = tree(work)
    proc = gv(work, "tile", "sample/scene.tif", "sample/labels.gpkg", *T, "--stride", "16",
              "--block-size", "16", "-o", "s.zarr")
    refused(proc, "--block-size 16 is smaller than --tile-size 32: tiles would reach into "
                  "blocks of other splits, so splits would share pixels; give a --block-size "
                  "of at least 32 (default 128)")
    assert tree(work) == before


def test_6_geometry_collections_with_lines_or_points_are_refused(work: Path) -> None:
    with rasterio.open(work / "sample" / "scene.tif") as src:
        b, crs = src.bounds, src.crs
    cx, cy = (b.left + b.right) / 2, (b.bottom + b.top) / 2
    gc = shapely.GeometryCollection([
        shapely.box(cx - 200, cy - 200, cx + 200, cy + 200),
        shapely.LineString([(b.left + 50, b.bottom + 50), (b.right - 50, b.top - 50)]),
        *[shapely.Point(b.left + 100 + i * 150, b.bottom + 100) for i in range(5)]])
    gpd.GeoDataFrame({"kind": ["building"]}, geometry=[gc], crs=crs).to_file(work / "gc.gpkg")
    before = tree(work)
    proc = gv(work, "tile", "sample/scene.tif", "gc.gpkg", *T, "--min-valid", "0", "-o",
              "gc.zarr")
    refused(proc, "gc.gpkg: holds 5 points and 1 line, which cover no area; give --buffer PX "
                  "to turn points into discs and lines into corridors of PX pixels (boxes of "
                  "side 2*PX for detection), or leave them out of the file")
    assert tree(work) == before


def test_7_a_label_value_named_background_is_refused(work: Path) -> None:
    labels = gpd.read_file(work / "sample" / "labels.gpkg")
    labels.loc[labels["kind"] == "water", "kind"] = "background"
    labels.to_file(work / "bg.gpkg")
    before = tree(work)
    proc = gv(work, "tile", "sample/scene.tif", "bg.gpkg", *T, "-o", "bg.zarr")
    refused(proc, "bg.gpkg: field 'kind': the value 'background' is the name of class 0 "
                  "(pixels no label covers); rename it in the file, or give --class-map FILE "
                  "with 'background: background' to make those features background")
    assert tree(work) == before


# ---------------------------------------------------------------- outputs that cannot be

def _commands(base: Path, out: str) -> dict[str, list[str]]:
    model, store = str(base / "model.pt"), str(base / "seg.zarr")
    return {
        "tile": ["tile", "sample/scene.tif", "sample/labels.gpkg", *T, "-o", out],
        "infer": ["infer", model, "sample/scene.tif", "-q", "-o", out],
        "train": ["train", CONFIG, "--set", f"data.dataset={store}", "--set", f"output={out}",
                  "-q"],
        "evaluate": ["evaluate", model, store, "-q", "-o", out],
        "export": ["export", model, "-o", out],
        "generate": ["generate", out, "--size", "32"],
    }


@pytest.mark.slow
@pytest.mark.parametrize(("command", "message"), [
    ("tile", "ro/: not writable (permission denied); choose another --output"),
    ("infer", "ro/: not writable (permission denied); choose another --output"),
    ("train", "ro/: not writable (permission denied); choose another output"),
    ("evaluate", "ro/: not writable (permission denied); choose another --output"),
    ("export", "ro/: not writable (permission denied); choose another --output"),
    ("generate", "ro/: not writable (permission denied); choose another OUT_DIR"),
])
def test_a_read_only_output_folder_is_one_line(work: Path, base: Path, command: str,
                                               message: str) -> None:
    ro = readonly_folder(work / "ro")
    try:
        before = tree(work)
        out = "ro/x.pt" if command == "export" else "ro/out"
        proc = gv_restricted(work, *_commands(base, out)[command])
        refused(proc, message)
        assert tree(work) == before
    finally:
        ro.chmod(0o755)


@pytest.mark.slow
@pytest.mark.parametrize(("command", "extra", "message"), [
    ("tile", [], "afile: a file, where a folder is needed; choose another --output"),
    ("tile", ["--overwrite"], "afile: a file, where a folder is needed; choose another "
                              "--output"),
    ("infer", [], "afile: a file, where a folder is needed; choose another --output"),
    ("train", [], "afile/segmentation-unet: afile is a file, where a folder is needed; "
                  "choose another output"),
    ("evaluate", [], "afile: a file, where a folder is needed; choose another --output"),
    ("generate", [], "afile: a file, where a folder is needed; choose another OUT_DIR"),
    ("export", [], "afile: exists and geovision did not write it; nothing was written; "
                   "choose another --output or move it away"),
])
def test_an_output_path_that_is_a_file_is_one_line(work: Path, base: Path, command: str,
                                                   extra: list[str], message: str) -> None:
    (work / "afile").write_text("mine\n")
    before = tree(work)
    refused(gv(work, *_commands(base, "afile")[command], *extra), message)
    assert tree(work) == before


def test_export_to_a_folder_is_one_line(work: Path, base: Path) -> None:
    (work / "adir").mkdir()
    (work / "adir" / "keep.txt").write_text("mine\n")
    before = tree(work)
    refused(gv(work, *_commands(base, "adir")["export"], "--overwrite"),
            "adir/: a folder, where a file is needed; choose another --output")
    assert tree(work) == before


# ---------------------------------------------------------------- model files

@pytest.mark.slow
@pytest.mark.parametrize(("argv", "message"), [
    (["info", "/etc/passwd"], "/etc/passwd: a text file, not a model bundle; give the "
                              "model.pt that `geovision train` writes"),
    (["info", "m.pt"], "m.pt: a text file, not a model bundle; give the model.pt that "
                       "`geovision train` writes"),
    (["export", "m.pt"], "m.pt: a text file, not a model bundle; give the model.pt that "
                         "`geovision train` writes"),
    (["infer", "sample/scene.tif", "MODEL", "-o", "p"],
     "sample/scene.tif: a GeoTIFF, not a model bundle; MODEL comes first: geovision infer "
     "MODEL SCENES... [-o DIR]"),
    (["evaluate", "STORE", "MODEL"],
     "STORE: a folder (a Zarr store, e.g. a tile dataset), not a model bundle; MODEL comes "
     "first: geovision evaluate MODEL DATASET [-o DIR]"),
])
def test_a_file_that_is_not_a_model_is_named(work: Path, base: Path, argv: list[str],
                                             message: str) -> None:
    (work / "m.pt").write_text("hello, not a model\n")
    subst = {"MODEL": str(base / "model.pt"), "STORE": str(base / "seg.zarr")}
    argv = [subst.get(a, a) for a in argv]
    message = message.replace("STORE", subst["STORE"])
    before = tree(work)
    refused(gv(work, *argv), message)
    assert tree(work) == before


# ---------------------------------------------------------------- generate options

@pytest.mark.parametrize(("extra", "message"), [
    (["--crs", "EPSG:999999"], "--crs EPSG:999999: not a CRS that PROJ knows; give one such "
                               "as EPSG:32633 (UTM zone 33N) or EPSG:4326"),
    (["--res", "0"], "Invalid value for '--res': 0.0 is not in the range x>0. (see geovision "
                     "generate --help)"),
    (["--res", "-10"], "Invalid value for '--res': -10.0 is not in the range x>0. (see "
                       "geovision generate --help)"),
])
def test_bad_generate_options_leave_nothing(tmp_path: Path, extra: list[str],
                                            message: str) -> None:
    refused(gv(tmp_path, "generate", "g", "--size", "32", *extra), message)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- two runs at once

@pytest.mark.slow
@pytest.mark.parametrize("command", ["tile", "generate", "export", "evaluate", "train"])
def test_a_second_run_on_a_locked_output_names_the_holder(work: Path, base: Path,
                                                          command: str) -> None:
    out = {"train": "runs/segmentation-unet", "export": "x.pt"}.get(command, "out")
    argv = _commands(base, "runs" if command == "train" else out)[command]
    holder = hold_lock(work / out, "geovision first run")
    try:
        before = tree(work)
        proc = gv(work, *argv, *(["--resume"] if command == "tile" else []))
        assert proc.returncode == 2, proc.stderr
        [line] = proc.stderr.splitlines()
        assert line.startswith(f"geovision: error: {out}: in use by 'geovision first run' "
                               f"(pid {holder.pid} on "), line
        assert line.endswith("; wait for it or stop it"), line
        assert tree(work) == before
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_a_second_infer_on_a_locked_scene_names_the_holder(work: Path, base: Path) -> None:
    (work / "pred").mkdir()
    holder = hold_lock(work / "pred" / "scene", "geovision first run")
    try:
        before = tree(work)
        proc = gv(work, *_commands(base, "pred")["infer"], "--resume")
        assert proc.returncode == 2, proc.stderr
        [line] = proc.stderr.splitlines()
        assert line.startswith(f"geovision: error: pred/scene: in use by 'geovision first "
                               f"run' (pid {holder.pid} on "), line
        assert tree(work) == before
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------- damaged stores

def test_a_tile_store_without_its_arrays_is_named(work: Path, base: Path) -> None:
    (work / "bare.zarr").mkdir()
    shutil.copy(base / "seg.zarr" / "zarr.json", work / "bare.zarr" / "zarr.json")
    (work / "empty.zarr").mkdir()
    (work / "empty.zarr" / "zarr.json").write_text("")
    before = tree(work)
    refused(gv(work, "info", "bare.zarr"), "bare.zarr: damaged tile store: array 'image' is "
            "missing; tile the data again (geovision tile ... --overwrite)")
    refused(gv(work, "info", "empty.zarr"), "empty.zarr: cannot read zarr.json (Expecting "
            "value: line 1 column 1 (char 0)); not a tile dataset written by `geovision tile`")
    assert tree(work) == before


def test_score_never_replaces_a_users_file(work: Path, base: Path) -> None:
    (work / "score").mkdir()
    (work / "score" / "score.json").write_text('{"mine": 1}\n')
    before = tree(work)
    proc = gv(work, "score", str(base / "sample" / "scene.tif"), "sample/labels.gpkg",
              "--class-field", "kind", "-o", "score", "--overwrite")
    refused(proc, "score/score.json: exists and geovision did not write it; nothing was "
                  "written; choose another -o or move it away")
    assert tree(work) == before
