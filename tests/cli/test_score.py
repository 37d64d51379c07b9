"""`geovision score`: the command line over geovision.evaluation.score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from geovision.cli.main import main
from geovision.formats import CLASS_NODATA
from tests.evaluation.score_helpers import Scene, confusion_by_name, lux_map


@pytest.fixture(scope="module")
def lux(luxembourg: Path, tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return lux_map(luxembourg, tmp_path_factory.mktemp("lux"))


def test_score_writes_its_files_and_prints_the_headline(lux: Scene, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]):
    """Real sample: the confusion matrix equals one whole-raster computation."""
    out = tmp_path / "score"
    argv = ["score", str(lux.prediction), str(lux.labels), "--class-field", "NAME_1",
            "--replicates", "20", "--block-size", "64", "--bootstrap-block", "8", "-o",
            str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    doc = json.loads((out / "score.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["confusion_matrix.png", "report.md",
                                                     "score.json"]
    scored = lux.predicted != CLASS_NODATA
    order = [c["name"] for c in doc["classes"]]
    expected = confusion_by_name(lux.truth, lux.names, lux.predicted, lux.names, scored, order)
    assert np.array_equal(np.array(doc["confusion_matrix"]["pixels"]), expected)
    assert doc["options"]["class_field"] == "NAME_1" and doc["options"]["replicates"] == 20
    assert printed[0].startswith(f"lux.class.tif: overall accuracy "
                                 f"{np.trace(expected) / expected.sum():.3f} (95% CI ")
    assert f"(baseline {doc['baseline']['miou']:.3f}, every pixel '" in printed[0]
    assert printed[1] == f"{out}: confusion_matrix.png, report.md, score.json"

    # an earlier score is replaced only when asked; other files stay
    (out / "notes.txt").write_text("mine")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "use --overwrite to replace them" in err
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("extra", "message"), [
    (["--unlabeled", "none"], "Invalid value for '--unlabeled': 'none' is not one of"),
    (["--replicates", "-1"], "Invalid value for '--replicates': -1 is not in the range x>=0"),
    (["--block-size", "x"], "Invalid value for '--block-size': 'x' is not a valid integer"),
])
def test_bad_options_are_refused_by_the_command_line(tmp_path: Path, extra: list[str],
                                                     message: str,
                                                     capsys: pytest.CaptureFixture[str]):
    assert main(["score", "p.tif", "l.gpkg", "-o", str(tmp_path / "s"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_missing_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["score", str(tmp_path / "nope.class.tif"), "l.gpkg", "-o",
                 str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"geovision: error: {tmp_path / 'nope.class.tif'}: file not found"


def test_help_lists_every_score_option(capsys: pytest.CaptureFixture[str]):
    assert main(["score", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--class-field", "--layer", "--class-map", "--aoi", "--unlabeled", "--scene",
                 "--block-size", "--bootstrap-block", "--replicates", "--seed", "--overwrite",
                 "-o, --output"):
        assert flag in text, flag
