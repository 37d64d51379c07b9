"""Every command the README marks runnable works as written.

Convention: a fenced ``bash`` or ``python`` block right after a ``<!-- test -->`` line is run
by this test, block after block in README order, in one empty folder holding a copy of
``configs/``; bash lines starting with ``geovision`` go through the real command line (in this
process), python blocks are executed. Usage lines (indented, with placeholders), ``make`` and
cluster or GPU commands are not marked: ``make test`` is CI itself, and the cluster tests run
``geovision run``.
"""

import re
import shlex
import shutil
from pathlib import Path

import pytest

from geovision.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- test -->\n```(bash|python)\n(.*?)```", re.S)


def runnable_blocks(text):
    """``(language, code)`` of every block marked ``<!-- test -->``, in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def commands(code):
    """The command lines of a bash block: comments dropped, continuations joined."""
    lines = code.replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.split("#")[0].strip()]


def test_the_readme_marks_its_walkthrough_runnable():
    blocks = runnable_blocks((ROOT / "README.md").read_text())
    run = [c[0] for lang, code in blocks if lang == "bash" for c in commands(code)]
    assert run and set(run) == {"geovision"}
    steps = {c[1] for lang, code in blocks if lang == "bash" for c in commands(code)}
    assert {"generate", "tile", "info", "train", "infer", "vectorize", "score", "evaluate",
            "export"} <= steps
    assert any(lang == "python" for lang, _ in blocks)


@pytest.mark.slow  # the whole README walkthrough
@pytest.mark.filterwarnings("ignore")
def test_readme_commands_run_as_written(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    for lang, code in runnable_blocks((ROOT / "README.md").read_text()):
        if lang == "python":
            exec(compile(code, "README.md", "exec"), {})
            continue
        for argv in commands(code):
            assert main(["-q", *argv[1:]]) == 0, " ".join(argv)
    for path in ["seg.zarr", "runs/segmentation-unet/model.pt", "predictions/scene.class.tif",
                 "predictions/scene.prob.tif", "predictions/scene.preview.png",
                 "predictions/scene.polygons.gpkg", "scene.polygons.geojson",
                 "eval/metrics.json", "score/score.json", "score/report.md",
                 "score/confusion_matrix.png", "py/score/score.json",
                 "det-predictions/scene.detections.geojson",
                 "det-predictions/scene.preview.png",
                 "runs/segmentation-unet/model.torchscript.pt", "py/predictions/scene.json",
                 "py/predictions/scene.preview.png", "py/model.torchscript.pt"]:
        assert (tmp_path / path).exists(), path
