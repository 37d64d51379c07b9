"""Low-level failures become one line naming the file: OSError, damaged rasters, model files."""

from __future__ import annotations

import errno
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from geovision.errors import (
    GeovisionError,
    InputFileError,
    ModelFileError,
    OutputError,
)
from geovision.failures import (
    check_model_file,
    model_load_error,
    os_error,
    raster_error,
    reading,
    sniff,
    translated,
)
from geovision.synthetic import make_sample
from tests.safety_helpers import readonly_folder, run_restricted

INFER_USAGE = "geovision infer MODEL SCENES..."


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------ OSError

def test_real_os_errors_name_the_path_and_the_fix(cwd: Path) -> None:
    (cwd / "afile").write_text("user")
    (cwd / "adir").mkdir()
    cases: list[tuple[object, str]] = [
        (lambda: open("adir", "w"),
         "adir: a folder, where a file is needed; choose another --output"),
        (lambda: os.mkdir("afile/seg"),
         "afile/seg: afile is a file, where a folder is needed; choose another --output"),
        (lambda: open("gone/x.tif", "w"),
         "gone/x.tif: its folder is gone (moved or deleted while geovision ran?); run the "
         "command again"),
        (lambda: os.mkdir("afile"),
         "afile: a file is in the way, where geovision writes its output; choose another "
         "--output"),
        (lambda: os.replace("afile", "adir"),
         "adir: a folder, where a file is needed; choose another --output"),
    ]
    for action, message in cases:
        with pytest.raises(OutputError) as err, translated(option="--output"):
            action()  # type: ignore[operator]
        assert str(err.value) == message
        assert isinstance(err.value.__cause__, OSError)


def test_a_full_disk_names_the_folder(cwd: Path) -> None:
    """Errors of write() carry no file name: the block names the file it writes."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with pytest.raises(OutputError) as err, translated(option="-o", path="/dev/full"):
        with open("/dev/full", "w") as f:
            f.write("x")
            f.flush()
    assert str(err.value) == "/dev/: no space left on the device; free some space or choose " \
                             "another -o"


@pytest.mark.parametrize(("code", "message"), [
    (errno.EACCES, "ro/: not writable (permission denied); choose another --output"),
    (errno.EROFS, "ro/: not writable (read-only file system); choose another --output"),
    (errno.ENOSPC, "ro/: no space left on the device; free some space or choose another "
                   "--output"),
    (errno.EDQUOT, "ro/: disk quota exceeded; free some space or choose another --output"),
])
def test_os_errors_of_outputs_by_errno(cwd: Path, code: int, message: str) -> None:
    """Errors a test cannot cause for real everywhere (a read-only mount, a full disk)."""
    (cwd / "ro").mkdir()
    exc = OSError(code, os.strerror(code), "ro/.metrics.json.tmp-9492")
    assert str(os_error(exc, option="--output")) == message


def test_os_errors_of_inputs(cwd: Path) -> None:
    (cwd / "adir").mkdir()
    (cwd / "afile").write_text("x")
    cases = [
        (OSError(errno.ENOENT, "No such file", "scene.tif"), "scene.tif: not found"),
        (OSError(errno.EACCES, "Permission denied", "scene.tif"),
         "scene.tif: not readable (permission denied); check its permissions"),
        (OSError(errno.EISDIR, "Is a directory", "adir"), "adir: a folder, where a file is needed"),
        (OSError(errno.ENOTDIR, "Not a directory", "afile/x.tif"),
         "afile/x.tif: afile is a file, not a folder"),
        (OSError(errno.EIO, "Input/output error", "scene.tif"),
         "scene.tif: input/output error while reading it (a damaged disk or an unreachable "
         "share?)"),
    ]
    for exc, message in cases:
        err = os_error(exc, role="input")
        assert isinstance(err, InputFileError) and str(err) == message


def test_translated_leaves_bugs_and_geovision_errors_alone() -> None:
    with pytest.raises(OSError) as err, translated():
        raise OSError("no errno, no file: a bug")
    assert not isinstance(err.value, GeovisionError)
    with pytest.raises(OSError) as err, translated():
        raise ConnectionResetError(errno.ECONNRESET, "reset")  # no file name
    assert not isinstance(err.value, GeovisionError)
    mine = OutputError("already one line")
    with pytest.raises(OutputError) as caught, translated():
        raise mine
    assert caught.value is mine


def test_a_read_only_folder_for_real(cwd: Path) -> None:
    """Issue 10: every stage gave a PermissionError traceback in a read-only folder."""
    ro = readonly_folder(cwd / "ro")
    try:
        res = run_restricted(
            "from geovision.failures import translated\n"
            "from geovision.errors import OutputError\n"
            "for path in ['ro/.metrics.json.tmp-1', 'ro/eval/metrics.json']:\n"
            "    try:\n"
            "        with translated(option='-o'):\n"
            "            open(path, 'w')\n"
            "    except OutputError as e:\n"
            "        print(e)\n", cwd)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [
            "ro/: not writable (permission denied); choose another -o",
            "ro/eval/metrics.json: its folder is gone (moved or deleted while geovision ran?); "
            "run the command again",
        ]
    finally:
        ro.chmod(0o755)


# ------------------------------------------------------------------ damaged rasters

@pytest.fixture
def damaged_tif(tmp_path: Path) -> Path:
    """A tiled DEFLATE GeoTIFF whose header is fine and whose block (row 1, col 1) is not."""
    path = tmp_path / "bad.tif"
    data = np.arange(128 * 128, dtype=np.uint16).reshape(1, 128, 128)
    with rasterio.open(path, "w", driver="GTiff", width=128, height=128, count=1,
                       dtype="uint16", crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 1280),
                       tiled=True, blockxsize=64, blockysize=64, compress="deflate") as dst:
        dst.write(data)
    with rasterio.open(path) as ds:
        offset = int(ds.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
        size = int(ds.get_tag_item("BLOCK_SIZE_1_1", "TIFF", bidx=1))
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xde\xad\xbe\xef" * (size // 4))
    return path


def test_a_damaged_block_names_the_file_and_the_window(damaged_tif: Path) -> None:
    """Issue 10: tile and infer ended in `RasterioIOError: Read failed. See previous ...`."""
    window = Window(64, 64, 64, 64)
    with rasterio.open(damaged_tif) as ds:
        assert ds.read(1, window=Window(0, 0, 64, 64)).shape == (64, 64)  # the rest reads
        with pytest.raises(InputFileError) as err, reading(damaged_tif, window):
            ds.read(1, window=window)
    message = str(err.value)
    assert message.startswith(f"{damaged_tif}: damaged data at rows 64-127, cols 64-127 (")
    assert message.endswith("); re-create or re-download the file")
    assert "see previous exception" not in message.lower()
    assert "TIFFReadEncodedTile() failed" in message or "IReadBlock" in message
    assert isinstance(err.value.__cause__, rasterio.errors.RasterioIOError)


@pytest.mark.parametrize(("window", "text"), [
    (Window(10, 20, 30, 40), "rows 20-59, cols 10-39"),
    (((20, 60), (10, 40)), "rows 20-59, cols 10-39"),
    (None, ""),
])
def test_windows_in_raster_errors(window: object, text: str) -> None:
    err = raster_error(rasterio.errors.RasterioIOError("Read failed."), "a.tif", window)
    at = f" at {text}" if text else ""
    assert str(err) == f"a.tif: damaged data{at} (Read failed.); re-create or re-download the file"


def test_reading_leaves_other_errors_alone(damaged_tif: Path) -> None:
    with pytest.raises(KeyError), reading(damaged_tif):
        raise KeyError("a bug")


# ------------------------------------------------------------------ model files

@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real file of every kind a user might give where a model bundle is expected."""
    import torch

    d = tmp_path_factory.mktemp("files")
    sample = make_sample(d / "sample", size=32, seed=1)
    out = {"geotiff": Path(sample.rasters[0]), "geopackage": Path(sample.labels)}
    out["bundle"] = d / "model.pt"
    torch.save({"geovision": {"format": "model"}, "w": torch.zeros(2)}, out["bundle"])
    out["legacy"] = d / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, out["legacy"], _use_new_zipfile_serialization=False)
    out["torchscript"] = d / "model.torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), out["torchscript"])
    out["truncated"] = d / "truncated.pt"
    out["truncated"].write_bytes(out["bundle"].read_bytes()[:300])
    out["globals"] = d / "globals.pt"
    torch.save({"f": print}, out["globals"])
    out["text"] = d / "m.pt"
    out["text"].write_text("hello, not a model\n")
    out["passwd"] = d / "passwd"
    out["passwd"].write_text("root:x:0:0:root:/root:/bin/bash\n")
    out["yaml"] = d / "segmentation.yaml"
    out["yaml"].write_text("name: run\nmodel: {name: unet}\n")
    out["empty"] = d / "empty.pt"
    out["empty"].write_bytes(b"")
    out["pickle"] = d / "pick.pt"
    out["pickle"].write_bytes(pickle.dumps({"a": 1}, protocol=4))
    out["tiff"] = d / "plain.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(out["tiff"], "w", driver="GTiff", width=8, height=8, count=1,
                           dtype="uint8") as dst:
            dst.write(np.zeros((1, 8, 8), np.uint8))
    out["png"] = d / "curves.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(out["png"], "w", driver="PNG", width=8, height=8, count=1,
                           dtype="uint8") as dst:
            dst.write(np.zeros((1, 8, 8), np.uint8))
    out["zip"] = d / "archive.zip"
    with zipfile.ZipFile(out["zip"], "w") as zf:
        zf.writestr("readme.txt", "hi")
    out["zarr"] = d / "seg.zarr"
    out["zarr"].mkdir()
    (out["zarr"] / "zarr.json").write_text("{}")
    out["session"] = d / "runs" / "seg"
    out["session"].mkdir(parents=True)
    (out["session"] / "model.pt").write_bytes(out["bundle"].read_bytes())
    (out["session"] / "config.yaml").write_text("name: seg\n")
    return out


@pytest.mark.parametrize(("name", "kind"), [
    ("bundle", "torch"), ("globals", "torch"), ("legacy", "torch-legacy"),
    ("torchscript", "torchscript"), ("truncated", "damaged-zip"), ("text", "text"),
    ("passwd", "text"), ("yaml", "yaml"), ("empty", "empty"), ("pickle", "pickle"),
    ("geotiff", "geotiff"), ("tiff", "tiff"), ("png", "png"), ("geopackage", "geopackage"),
    ("zip", "zip"), ("zarr", "zarr"), ("session", "session"),
])
def test_sniff_tells_what_a_file_is(files: dict[str, Path], name: str, kind: str) -> None:
    assert sniff(files[name]).name == kind


def test_sniff_the_real_samples(luxembourg: Path) -> None:
    assert sniff(luxembourg / "elev.tif").name == "geotiff"
    assert sniff(luxembourg / "lux.shp").name == "shapefile"
    assert sniff(luxembourg / "missing.pt").name == "missing"


def test_a_bundle_passes(files: dict[str, Path]) -> None:
    check_model_file(files["bundle"])
    check_model_file(files["globals"])  # torch.load refuses it later: model_load_error


@pytest.mark.parametrize(("name", "message"), [
    ("geotiff", "{}: a GeoTIFF, not a model bundle; MODEL comes first: " + INFER_USAGE),
    ("geopackage", "{}: a GeoPackage (vector data), not a model bundle; MODEL comes first: "
                   + INFER_USAGE),
    ("zarr", "{}: a folder (a Zarr store, e.g. a tile dataset), not a model bundle; MODEL "
             "comes first: " + INFER_USAGE),
    ("text", "{}: a text file, not a model bundle; give the model.pt that `geovision train` "
             "writes"),
    ("passwd", "{}: a text file, not a model bundle; give the model.pt that `geovision "
               "train` writes"),
    ("empty", "{}: an empty file (0 bytes), not a model bundle; give the model.pt that "
              "`geovision train` writes"),
    ("pickle", "{}: a Python pickle, not a model bundle; geovision never unpickles files; "
               "give the model.pt that `geovision train` writes"),
    ("legacy", "{}: a torch file in the legacy (pre-1.6) format, not a model bundle; "
               "geovision never unpickles files; give the model.pt that `geovision train` "
               "writes"),
    ("torchscript", "{}: a TorchScript export (geovision export), not a model bundle; give "
                    "the model.pt it was exported from"),
    ("truncated", "{}: a damaged or truncated zip (or torch) file, not a model bundle; give "
                  "the model.pt that `geovision train` writes"),
    ("zip", "{}: a zip archive, not a model bundle; give the model.pt that `geovision train` "
            "writes"),
])
def test_what_is_not_a_bundle_is_named(files: dict[str, Path], name: str,
                                       message: str) -> None:
    """Issue 10: /etc/passwd gave IndexError, a text m.pt KeyError, a GeoTIFF torch's hint."""
    with pytest.raises(ModelFileError) as err:
        check_model_file(files[name], usage=INFER_USAGE)
    assert str(err.value) == message.format(files[name])
    assert "weights_only" not in str(err.value)


def test_a_session_folder_points_at_its_bundle(files: dict[str, Path]) -> None:
    with pytest.raises(ModelFileError) as err:
        check_model_file(files["session"])
    assert str(err.value) == (f"{files['session']}: a training session folder, not a model "
                              f"bundle; give {files['session'] / 'model.pt'}")


def test_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as err:
        check_model_file(tmp_path / "nope.pt")
    assert str(err.value) == f"{tmp_path / 'nope.pt'}: model file not found"


def test_swapped_arguments_without_usage_still_say_what_was_expected(
        files: dict[str, Path]) -> None:
    with pytest.raises(ModelFileError) as err:
        check_model_file(files["geotiff"])
    assert str(err.value) == (f"{files['geotiff']}: a GeoTIFF, not a model bundle; give the "
                              "model.pt that `geovision train` writes")


def test_torch_refusals_never_suggest_weights_only_false(files: dict[str, Path]) -> None:
    import torch

    with pytest.raises(pickle.UnpicklingError) as raised:
        torch.load(files["globals"], weights_only=True)
    assert "weights_only" in str(raised.value)  # torch's own text, which users never see
    err = model_load_error(files["globals"], raised.value)
    assert str(err) == (f"{files['globals']}: refused: the file holds Python objects (print), "
                        "not only tensors and plain values; a geovision model bundle never "
                        "does, so it was not loaded")
    other = model_load_error(files["bundle"], RuntimeError("PytorchStreamReader failed"))
    assert str(other) == (f"{files['bundle']}: a damaged or truncated torch file (torch.load: "
                          "RuntimeError); give the model.pt that `geovision train` writes")
