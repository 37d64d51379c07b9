"""`geovision demo --quick`: every step of the journey runs and reports where things are."""

import json
from pathlib import Path

import pytest

from geovision.cli.main import main
from geovision.demo import STEPS


@pytest.mark.slow  # the whole demo
def test_quick_demo_runs_every_step(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "demo.json").read_text())
    for name, path in report["outputs"].items():
        assert Path(path).exists(), name
        assert str(path) in printed
    assert set(report["seconds"]) == {"generate", "tile", "train_segmenter", "train_detector",
                                      "infer", "score", "preview", "total"}
    assert printed.count(f"/{STEPS}] ") == STEPS
    seg, det = report["metrics"]["segmentation"], report["metrics"]["detection"]
    assert "baseline_miou" in seg and "baseline_map_50" in det
    assert f"mIoU {seg['miou']:.3f} (baseline {seg['baseline_miou']:.3f}" in printed
    assert f"mAP@0.5 {det['map_50']:.3f}" in printed
    assert (out / "preview.png").stat().st_size > 10_000

    # a second run refuses the folder unless told to replace it
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["-q", "demo", "--quick", "--out", str(out), "--overwrite"]) == 0
    assert (out / "demo.json").is_file()


def test_overwrite_never_removes_what_the_demo_did_not_write(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("years of work")
    assert main(["demo", "--quick", "--out", str(tmp_path), "--overwrite"]) == 2
    assert "thesis.tex" in capsys.readouterr().err
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
