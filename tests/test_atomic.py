"""Atomic writes: a file appears only once complete; a failed write leaves nothing."""

import pytest

from geovision.atomic import atomic_path, temporary_name, write_text


def test_a_file_appears_only_when_complete(tmp_path):
    out = tmp_path / "a.json"
    with atomic_path(out) as tmp:
        tmp.write_text("{}")
        assert not out.exists() and tmp.parent == tmp_path and tmp.name.startswith(".")
    assert out.read_text() == "{}" and not tmp.exists()
    write_text(out, "[1]")
    assert out.read_text() == "[1]" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_the_suffix_can_stay_last_for_writers_that_read_it():
    name = temporary_name(__import__("pathlib").Path("/x/plot.png"), keep_suffix=True)
    assert name.suffix == ".png" and name.name.startswith(".plot.tmp-")
