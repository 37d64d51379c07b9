"""Ownership marks: geovision deletes only what it wrote, names stay inside their parent."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from geovision.errors import InputError, OutputError, OutputInUseError
from geovision.locks import lock_path
from geovision.ownership import (
    MARK_NAME,
    check_removable,
    check_writable,
    claim_folder,
    is_owned,
    local_file,
    read_mark,
    record_files,
    remove_owned,
    safe_name,
    safe_subpath,
)
from tests.safety_helpers import hold_lock, readonly_folder, run_restricted

STORE_NAMES = ("zarr.json", "image", "mask", "row", "col")


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def write_store(folder: Path) -> Path:
    """A claimed folder with what a tile store writes: files and folders it declared."""
    claim_folder(folder, "tiles", names=STORE_NAMES, command="geovision tile x -o store")
    (folder / "zarr.json").write_text("{}")
    for name in ("image", "mask"):
        (folder / name / "c" / "0").mkdir(parents=True)
        (folder / name / "c" / "0" / "0").write_bytes(b"\0" * 16)
    return folder


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# ------------------------------------------------------------------ marks and removal

def test_claim_writes_a_mark_before_anything_else(cwd: Path) -> None:
    folder = claim_folder("runs/seg", "session", names=("config.yaml", "checkpoints"),
                          command="geovision train c.yaml")
    assert folder == Path("runs/seg") and folder.is_dir()
    assert [p.name for p in folder.iterdir()] == [MARK_NAME]
    mark = read_mark(folder)
    assert mark is not None
    assert (mark.kind, mark.folder, mark.names, mark.command) == (
        "session", True, ("config.yaml", "checkpoints"), "geovision train c.yaml")
    raw = json.loads((folder / MARK_NAME).read_text())
    assert raw["geovision"] == {"format": "owned", "version": 1}


def test_remove_owned_deletes_a_store_it_wrote(cwd: Path) -> None:
    store = write_store(cwd / "tiles.zarr")
    assert is_owned(store)
    assert remove_owned(store) is True
    assert not store.exists()
    assert remove_owned(store) is False  # nothing left to do


def test_a_users_file_in_an_owned_store_is_never_deleted(cwd: Path) -> None:
    store = write_store(Path("tiles.zarr"))
    (store / "thesis.txt").write_text("three years of work")
    before = files_under(store)
    with pytest.raises(OutputError) as err:
        remove_owned(store)
    assert str(err.value) == ("tiles.zarr/: holds thesis.txt (not written by geovision); nothing "
                              "was deleted; choose another --output or move it away")
    assert files_under(store) == before
    assert not is_owned(store)


def test_a_folder_without_a_mark_is_refused(cwd: Path) -> None:
    """Issue 10 case 1: `tile --overwrite -o thesis` emptied a user's folder."""
    (cwd / "thesis").mkdir()
    (cwd / "thesis" / "thesis.txt").write_text("mine")
    with pytest.raises(OutputError) as err:
        remove_owned("thesis", option="-o/--output")
    assert str(err.value) == ("thesis/: holds thesis.txt (not written by geovision); nothing was "
                              "deleted; choose another -o/--output or move it away")
    assert (cwd / "thesis" / "thesis.txt").read_text() == "mine"


def test_an_empty_folder_without_a_mark_may_go(cwd: Path) -> None:
    (cwd / "empty").mkdir()
    assert remove_owned("empty") is True
    assert not (cwd / "empty").exists()


@pytest.mark.parametrize("marked", [False, True])
def test_the_input_folder_is_never_removed(cwd: Path, marked: bool) -> None:
    """Issue 10 case 1: `tile sample/scene.tif ... -o sample --overwrite` deleted the inputs."""
    sample = cwd / "sample"
    if marked:  # even a folder geovision wrote (generate) is kept while it holds an input
        claim_folder(sample, "sample", names=("scene.tif", "labels.gpkg"))
    else:
        sample.mkdir()
    (sample / "scene.tif").write_bytes(b"II*\0")
    (sample / "labels.gpkg").write_bytes(b"SQLite format 3\0")
    inputs = ["sample/scene.tif", "sample/labels.gpkg"]
    with pytest.raises(OutputError) as err:
        remove_owned("sample", inputs=inputs)
    assert str(err.value) == ("sample/: holds sample/scene.tif, an input of this command; "
                              "choose another --output")
    with pytest.raises(OutputError, match=r"^sample/scene.tif: is sample/scene.tif, an input"):
        check_removable("sample/scene.tif", inputs=inputs)
    assert sorted(p.name for p in sample.iterdir() if p.name != MARK_NAME) == [
        "labels.gpkg", "scene.tif"]


def test_an_input_inside_a_gdal_archive_path_is_protected(cwd: Path) -> None:
    claim_folder(cwd / "data", "sample", names=("*.zip",))
    (cwd / "data" / "scenes.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with pytest.raises(OutputError, match=r"^data/: holds /vsizip/data/scenes.zip/scene.tif, "
                                          r"an input of this command"):
        remove_owned("data", inputs=["/vsizip/data/scenes.zip/scene.tif",
                                     "/vsicurl/https://example.com/x.tif"])


def test_local_file_behind_gdal_paths(cwd: Path) -> None:
    (cwd / "data").mkdir()
    (cwd / "data" / "a.zip").write_bytes(b"PK")
    assert local_file("/vsizip/data/a.zip/x/y.tif") == Path("data/a.zip")
    assert local_file(f"/vsizip/{cwd}/data/a.zip/y.tif") == cwd / "data" / "a.zip"
    assert local_file("/vsizip/{data/a.zip}/y.tif") == Path("data/a.zip")
    assert local_file("scene.tif") == Path("scene.tif")
    for remote in ("/vsicurl/https://example.com/x.tif", "/vsis3/bucket/x.tif",
                   "/vsizip//vsicurl/https://h/a.zip/x.tif", "https://example.com/x.tif",
                   "/vsimem/x.tif", "/vsizip/nothing/here.zip/x.tif"):
        assert local_file(remote) is None


@pytest.mark.parametrize("target", [".", "..", "../..", "runs/.."])
def test_the_current_folder_and_its_parents_are_never_removed(cwd: Path, target: str) -> None:
    """Issue 10 case 2: `--set name=..` with `--overwrite` emptied the current folder."""
    claim_folder(cwd, "session", names=("runs", "notes.txt"))  # even one that carries a mark
    (cwd / "runs").mkdir()
    (cwd / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"(the current folder|a parent of the current "
                                          r"folder); geovision never replaces it"):
        remove_owned(target)
    assert (cwd / "notes.txt").read_text() == "mine"


def test_a_symlink_is_never_followed(cwd: Path) -> None:
    user = cwd / "user"
    user.mkdir()
    (user / "a.txt").write_text("mine")
    (cwd / "link.zarr").symlink_to("user")
    with pytest.raises(OutputError) as err:
        remove_owned("link.zarr")
    assert str(err.value) == ("link.zarr: a symbolic link (to user); geovision never deletes "
                              "through a link; give the real path or another --output")
    assert (user / "a.txt").read_text() == "mine" and (cwd / "link.zarr").is_symlink()


def test_a_symlink_inside_an_owned_folder_is_foreign(cwd: Path) -> None:
    store = write_store(cwd / "tiles.zarr")
    (cwd / "elsewhere").mkdir()
    (store / "image" / "c" / "1").symlink_to(cwd / "elsewhere")  # inside a declared entry
    (store / "shortcut").symlink_to(cwd / "elsewhere")
    with pytest.raises(OutputError, match=r"holds shortcut \(a symbolic link geovision did "
                                          r"not make\)"):
        remove_owned(store)
    (store / "shortcut").unlink()
    remove_owned(store)  # declared entries go whole; the link in them is removed, not followed
    assert (cwd / "elsewhere").is_dir()


def test_a_file_where_a_folder_is_expected_and_the_reverse(cwd: Path) -> None:
    """Issue 10: `tile -o afile --overwrite`, `export -o adir --overwrite` crashed."""
    (cwd / "afile").write_text("user")
    (cwd / "adir").mkdir()
    with pytest.raises(OutputError) as err:
        remove_owned("afile", kind="dir")
    assert str(err.value) == ("afile: a file, where a folder is needed; nothing was deleted; "
                              "choose another --output")
    with pytest.raises(OutputError) as err:
        remove_owned("adir", kind="file")
    assert str(err.value) == ("adir/: a folder, where a file is needed; nothing was deleted; "
                              "choose another --output")
    with pytest.raises(OutputError, match=r"^afile: not written by geovision; nothing was "
                                          r"deleted"):
        remove_owned("afile", kind="file")
    assert (cwd / "afile").read_text() == "user" and (cwd / "adir").is_dir()


def test_single_files_in_a_users_folder_go_only_when_recorded_and_unchanged(
        cwd: Path) -> None:
    """predictions/*.class.tif, generate's scene.tif: a manifest in the user's folder."""
    out = Path("predictions")
    out.mkdir()
    (out / "mine.tif").write_bytes(b"user")
    (out / "scene.class.tif").write_bytes(b"c" * 100)
    (out / "scene.json").write_text("{}")
    record_files(out, "scene.class.tif", "scene.json", kind="predictions",
                 command="geovision infer m.pt scene.tif")
    mark = read_mark(out)
    assert mark is not None and not mark.folder and sorted(mark.files) == [
        "scene.class.tif", "scene.json"]
    assert mark.files["scene.class.tif"].size == 100

    assert remove_owned(out / "scene.class.tif", kind="file") is True
    assert not (out / "scene.class.tif").exists()
    assert sorted(read_mark(out).files) == ["scene.json"]  # type: ignore[union-attr]
    with pytest.raises(OutputError, match=r"mine.tif: not written by geovision"):
        remove_owned(out / "mine.tif")
    (out / "scene.json").write_text('{"edited": "by the user"}')
    with pytest.raises(OutputError, match=r"scene.json: changed since geovision wrote it"):
        remove_owned(out / "scene.json")
    with pytest.raises(OutputError, match=r"predictions/: holds mine.tif"):
        remove_owned(out)  # the folder is the user's
    assert (out / "mine.tif").read_bytes() == b"user"


def test_a_users_folder_holding_only_recorded_files_keeps_the_folder(cwd: Path) -> None:
    """Issue 10 case 3: `generate DIR` replaced a user's scene.tif; it may replace its own."""
    data = cwd / "mydata"
    data.mkdir()
    for name in ("scene.tif", "labels.gpkg"):
        (data / name).write_bytes(b"generated")
    record_files(data, "scene.tif", "labels.gpkg", kind="sample")
    assert remove_owned(data) is True
    assert data.is_dir() and list(data.iterdir()) == []


def test_nested_owned_folders_count_as_owned(cwd: Path) -> None:
    """An inference scratch folder inside predictions/, an evaluation inside a session."""
    session = claim_folder(Path("runs/seg"), "session", names=("config.yaml",))
    (session / "config.yaml").write_text("a: 1")
    evaluation = claim_folder(session / "evaluation-test", "evaluation",
                              names=("metrics.json",))
    (evaluation / "metrics.json").write_text("{}")
    assert is_owned(session)
    (evaluation / "notes.md").write_text("mine")
    with pytest.raises(OutputError, match=r"seg/: holds evaluation-test/notes.md \(not "
                                          r"written by geovision\)"):
        remove_owned(session)
    (evaluation / "notes.md").unlink()
    remove_owned(session)
    assert not session.exists() and (cwd / "runs").is_dir()


def test_declared_patterns_and_crash_leftovers_are_owned(cwd: Path) -> None:
    session = claim_folder(cwd / "s", "session", names=("evaluation-*", ".*.tmp-*"))
    (session / "evaluation-val").mkdir()
    (session / ".metrics.json.tmp-123").write_text("half")
    (session / f"{MARK_NAME}.tmp-999").write_text("half a mark")
    assert remove_owned(session) is True


def test_claim_refuses_foreign_content_and_other_kinds(cwd: Path) -> None:
    (cwd / "thesis").mkdir()
    (cwd / "thesis" / "thesis.txt").write_text("mine")
    with pytest.raises(OutputError) as err:
        claim_folder("thesis", "tiles")
    assert str(err.value) == ("thesis/: holds thesis.txt, which geovision did not write; give "
                              "an empty or new folder with --output")
    assert read_mark(cwd / "thesis") is None
    claim_folder("runs/seg", "session")
    with pytest.raises(OutputError) as err:
        claim_folder("runs/seg", "tiles", option="-o")
    assert str(err.value) == ("runs/seg/: holds a geovision session output, not tiles; choose "
                              "another -o")
    (cwd / "afile").write_text("user")
    with pytest.raises(OutputError, match=r"^afile: a file, where a folder is needed"):
        claim_folder("afile", "tiles")
    (cwd / "link").symlink_to("thesis")
    with pytest.raises(OutputError, match=r"^link: a symbolic link \(to thesis\)"):
        claim_folder("link", "tiles")


def test_claim_adopts_an_older_output_only_when_asked(cwd: Path) -> None:
    """Stores written before marks existed: the stage checks its signature, then adopts."""
    old = cwd / "old.zarr"
    old.mkdir()
    (old / "zarr.json").write_text("{}")
    (old / "image").mkdir()
    with pytest.raises(OutputError, match="holds image, which geovision did not write"):
        claim_folder(old, "tiles", names=STORE_NAMES)
    claim_folder(old, "tiles", names=STORE_NAMES, adopt=True)
    assert is_owned(old)
    claim_folder(old, "tiles", names=("split",))  # names accumulate
    assert read_mark(old).names == (*STORE_NAMES, "split")  # type: ignore[union-attr]


def test_a_stale_lock_file_is_owned_but_a_held_one_is_in_use(cwd: Path) -> None:
    jobdir = claim_folder(Path("job"), "job", names=("tiles.zarr",))
    write_store(jobdir / "tiles.zarr")
    lock_path(jobdir / "tiles.zarr").write_text('{"pid": 1}')  # left by a killed run
    check_removable(jobdir)
    holder = hold_lock(jobdir / "tiles.zarr", "geovision run job.yaml")
    try:
        with pytest.raises(OutputInUseError, match=r"job/: holds \.tiles\.zarr\.geovision-lock "
                                                   r"\(a lock held by a running geovision "
                                                   r"command\)"):
            remove_owned(jobdir)
        assert (jobdir / "tiles.zarr" / "zarr.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert remove_owned(jobdir) is True


# ------------------------------------------------------------------ safe names

@pytest.mark.parametrize("name", ["", ".", "..", "../x", "../../escape", "/etc", "a/b",
                                  "a\\b", " padded", "tab\there", "nul\0", None, 3, ["a"]])
def test_unsafe_names_are_refused(cwd: Path, name: object) -> None:
    with pytest.raises(InputError) as err:
        safe_name(name, "runs")
    assert str(err.value) == f"name: {name!r} must be a plain folder name inside runs/"


def test_the_issue_example_message(cwd: Path) -> None:
    with pytest.raises(InputError) as err:
        safe_name("../../escape", "runs/", option="name")
    assert str(err.value) == "name: '../../escape' must be a plain folder name inside runs/"


@pytest.mark.parametrize("name", ["segmentation-unet", "run 2", "é-run", ".hidden", "a..b"])
def test_plain_names_stay_inside_their_parent(cwd: Path, name: str) -> None:
    path = safe_name(name, "runs")
    assert path == Path("runs") / name
    assert path.resolve().parent == (cwd / "runs").resolve()


def test_a_name_that_resolves_outside_through_a_link_is_refused(cwd: Path) -> None:
    (cwd / "runs").mkdir()
    (cwd / "outside").mkdir()
    (cwd / "runs" / "x").symlink_to(cwd / "outside")
    with pytest.raises(InputError) as err:
        safe_name("x", "runs", option="steps[2].output", what="file")
    assert str(err.value) == (f"steps[2].output: 'x' must be a plain file name inside runs/; "
                              f"it resolves to {(cwd / 'outside').resolve()}")


@pytest.mark.parametrize("value", ["", ".", "./", "/abs/out", "../x", "a/../../x", "a/../b",
                                   "a\\b", None, " out"])
def test_unsafe_subpaths_are_refused(cwd: Path, value: object) -> None:
    with pytest.raises(InputError) as err:
        safe_subpath(value, "work", option="steps[3].output")
    assert str(err.value) == f"steps[3].output: {value!r} must be a relative path inside work/"


@pytest.mark.parametrize("value", ["predictions", "predictions/seg", "./tiles.zarr", "a/b/c/"])
def test_relative_subpaths_stay_inside(cwd: Path, value: str) -> None:
    path = safe_subpath(value, "work")
    assert (cwd / "work").resolve() in path.resolve().parents


def test_a_subpath_through_a_link_outside_is_refused(cwd: Path) -> None:
    (cwd / "work").mkdir()
    (cwd / "work" / "data").symlink_to("/tmp")
    with pytest.raises(InputError, match=r"^output: 'data/x' must be a relative path inside "
                                         r"work/; it resolves to /tmp/x$"):
        safe_subpath("data/x", "work")


# ------------------------------------------------------------------ writability

def test_check_writable_accepts_new_and_existing_outputs(cwd: Path) -> None:
    check_writable("new/deeper/tiles.zarr")
    assert not (cwd / "new").exists()  # the check creates nothing
    (cwd / "existing").mkdir()
    check_writable("existing")
    (cwd / "model.pt").write_bytes(b"x")
    check_writable("model.pt", kind="file")
    check_writable("export.pt", kind="file")
    assert sorted(p.name for p in cwd.iterdir()) == ["existing", "model.pt"]


def test_check_writable_wrong_kinds(cwd: Path) -> None:
    """Issue 10: `infer -o file`, `train --set output=file`, `generate file`..."""
    (cwd / "afile").write_text("user")
    (cwd / "adir").mkdir()
    cases = [
        ("afile", "dir", "afile: a file, where a folder is needed; choose another --output"),
        ("adir", "file", "adir/: a folder, where a file is needed; choose another --output"),
        ("afile/seg", "dir",
         "afile/seg: afile is a file, where a folder is needed; choose another --output"),
    ]
    for path, kind, message in cases:
        with pytest.raises(OutputError) as err:
            check_writable(path, kind=kind)  # type: ignore[arg-type]
        assert str(err.value) == message
    assert (cwd / "afile").read_text() == "user"


def test_check_writable_read_only_folder(cwd: Path) -> None:
    """Issue 10: a read-only output folder gave a PermissionError traceback in every stage."""
    ro = readonly_folder(cwd / "ro")
    try:
        code = ("from geovision.errors import OutputError\n"
                "from geovision.ownership import check_writable\n"
                "for path, kind in [('ro/t.zarr', 'dir'), ('ro', 'dir'), ('ro/deep/er', 'dir'),"
                " ('ro/m.pt', 'file')]:\n"
                "    try:\n"
                "        check_writable(path, kind=kind, option='-o')\n"
                "        print('accepted', path)\n"
                "    except OutputError as exc:\n"
                "        print(exc)\n")
        res = run_restricted(code, cwd)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [
            "ro/: not writable (permission denied); choose another -o"] * 4
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_remove_owned_in_a_read_only_folder_deletes_nothing(cwd: Path) -> None:
    """The store's own folder is writable but its parent is not: it could only be emptied."""
    store = write_store(Path("ro/tiles.zarr"))
    before = files_under(store)
    readonly_folder(cwd / "ro")
    try:
        res = run_restricted(
            "from geovision.ownership import remove_owned\n"
            "from geovision.errors import OutputError\n"
            "try:\n    remove_owned('ro/tiles.zarr')\nexcept OutputError as e:\n"
            "    print(e)\n", cwd)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == ("ro/: not writable (permission denied); choose another "
                                      "--output")
    finally:
        (cwd / "ro").chmod(0o755)
    assert files_under(store) == before and is_owned(store)


def test_check_writable_on_a_missing_folder_in_a_file_path(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"is a file, where a folder is needed"):
        check_writable(tmp_path / "f" / "a" / "b")
    assert os.path.isfile(tmp_path / "f")
