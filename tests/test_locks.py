"""Output locks: a second run on the same output fails at once and names the first."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
from pathlib import Path

import pytest

from geovision.errors import OutputError, OutputInUseError
from geovision.locks import lock_holder, lock_path, output_lock
from geovision.ownership import claim_folder, remove_owned
from tests.safety_helpers import hold_lock, readonly_folder, run_python, run_restricted

COMMAND = "geovision tile big/scene.tif big/labels.gpkg -o out.zarr"


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def in_use_message(output: str, pid: int, command: str = COMMAND) -> str:
    return (rf"{re.escape(output)}: in use by '{re.escape(command)}' \(pid {pid} on "
            rf"{re.escape(socket.gethostname())}, since \d\d:\d\d\); wait for it or stop it")


def test_lock_file_sits_beside_the_output(cwd: Path) -> None:
    assert lock_path("runs/seg") == cwd / "runs" / ".seg.geovision-lock"
    assert lock_path("out.zarr/") == cwd / ".out.zarr.geovision-lock"
    assert lock_path("a/../b.zarr") == cwd / ".b.zarr.geovision-lock"
    with pytest.raises(OutputError):
        lock_path("/")


def test_a_lock_on_an_output_that_does_not_exist_leaves_nothing_behind(cwd: Path) -> None:
    with output_lock("new/deeper/out.zarr", command=COMMAND) as lock:
        assert lock == cwd / "new" / "deeper" / ".out.zarr.geovision-lock"
        info = json.loads(lock.read_text())
        assert (info["pid"], info["host"], info["command"]) == (
            os.getpid(), socket.gethostname(), COMMAND)
        holder = lock_holder("new/deeper/out.zarr")
        assert holder is not None and holder.pid == os.getpid()
    assert list(cwd.iterdir()) == []  # neither the lock file nor the folders it made


def test_the_folders_a_lock_made_stay_when_the_run_wrote_into_them(cwd: Path) -> None:
    with output_lock("runs/seg"):
        claim_folder("runs/seg", "session")
    assert sorted(p.name for p in (cwd / "runs").iterdir()) == ["seg"]


def test_a_second_process_is_refused_at_once_and_told_who_holds_it(cwd: Path) -> None:
    """Issue 10: two runs on one output crashed each other (KeyError 'image', ...)."""
    holder = hold_lock(cwd / "out.zarr", COMMAND)
    try:
        for _ in ("plain", "--resume", "--overwrite"):  # the lock is the same in every mode
            with pytest.raises(OutputInUseError) as err, output_lock("out.zarr"):
                raise AssertionError("entered a held lock")
            assert re.fullmatch(in_use_message("out.zarr", holder.pid), str(err.value))
        who = lock_holder("out.zarr")
        assert who is not None and (who.pid, who.command) == (holder.pid, COMMAND)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # kill -9 released it; the stale file is taken over, then removed at the end
    assert lock_path("out.zarr").exists() and lock_holder("out.zarr") is None
    with output_lock("out.zarr", command="geovision tile again"):
        assert json.loads(lock_path("out.zarr").read_text())["command"] == "geovision tile again"
    assert not lock_path("out.zarr").exists()


def test_overwrite_inside_the_lock_keeps_other_runs_out(cwd: Path) -> None:
    """--overwrite removes and re-creates the output while holding its lock, beside it."""
    claim_folder("out.zarr", "tiles", names=("zarr.json",))
    (cwd / "out.zarr" / "zarr.json").write_text("{}")
    with output_lock("out.zarr", command=COMMAND):
        remove_owned("out.zarr")
        assert not (cwd / "out.zarr").exists()
        res = run_python(
            "from geovision.locks import output_lock\n"
            "from geovision.errors import OutputInUseError\n"
            "try:\n    with output_lock('out.zarr'):\n        print('entered')\n"
            "except OutputInUseError as e:\n    print(e)\n", cwd)
        assert re.fullmatch(in_use_message("out.zarr", os.getpid()), res.stdout.strip())
        claim_folder("out.zarr", "tiles", names=("zarr.json",))
    assert (cwd / "out.zarr").is_dir()


def test_locks_are_reentrant_in_one_process(cwd: Path) -> None:
    """A job that holds its workdir and calls a stage that locks the same output."""
    with output_lock("out.zarr"), output_lock("out.zarr") as inner:
        assert inner.exists()
    assert not lock_path("out.zarr").exists()


def test_threads_of_one_process_share_the_lock(cwd: Path) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with output_lock("out.zarr"):
                pass
        except BaseException as exc:
            errors.append(exc)

    with output_lock("out.zarr"):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert errors == []


def test_a_read_only_folder_is_its_own_clear_error(cwd: Path) -> None:
    ro = readonly_folder(cwd / "ro")
    try:
        res = run_restricted(
            "from geovision.locks import output_lock\n"
            "from geovision.errors import OutputError\n"
            "for out in ['ro/t.zarr', 'ro/new/t.zarr']:\n"
            "    try:\n        with output_lock(out, option='-o'):\n"
            "            print('entered')\n"
            "    except OutputError as e:\n        print(type(e).__name__, e)\n", cwd)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [
            "OutputError ro/: not writable (permission denied); choose another -o"] * 2
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_a_file_in_the_path_is_refused(cwd: Path) -> None:
    (cwd / "afile").write_text("user")
    with pytest.raises(OutputError) as err, output_lock("afile/seg", option="output"):
        pass
    assert str(err.value) == ("afile: afile is a file, where a folder is needed; choose "
                              "another output")
    assert (cwd / "afile").read_text() == "user"
