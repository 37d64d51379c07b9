"""The command line answers mistakes at once: before torch or any library stage loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "rasterio", "geopandas", "zarr", "dask")

PROBE = """
import sys
from geovision.cli.main import main
code = main(sys.argv[1:])
heavy = [m for m in {heavy!r} if m in sys.modules]
print("HEAVY", ",".join(heavy))
sys.exit(code)
"""


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_a_misspelt_config_key_is_reported_before_torch_loads():
    proc = _run("train", "configs/segmentation.yaml", "--set", "data.datset=x")
    assert proc.returncode == 2
    assert "unknown key 'data.datset'; did you mean 'data.dataset'?" in proc.stderr
    assert "HEAVY \n" in proc.stdout


@pytest.mark.parametrize("argv", [
    ["tile", "a.tif", "b.gpkg", "-o", "t.zarr", "--fractions", "0.5,0.5"],
    ["tile", "a.tif", "b.gpkg", "-o", "t.zarr", "--task", "segmantation"],
    ["tile", "a.tif", "b.gpkg", "-o", "t.zarr", "--fractions", "0.5,0.1,0.1"],
    ["infer", "m.pt", "s.tif", "--overlap", "2"],
    ["infer", "m.pt", "s.tif", "--device", "tpu"],
    ["evaluate", "m.pt", "t.zarr", "--split", "tset"],
    ["score", "p.tif", "l.gpkg", "--unlabeled", "ignroe"],
    ["score", "p.tif", "l.gpkg", "--bootstrap-block", "0"],
])
def test_bad_options_are_reported_before_any_library_loads(argv):
    proc = _run(*argv)
    assert proc.returncode == 2, proc.stderr
    assert "HEAVY \n" in proc.stdout, proc.stdout


def test_a_misspelt_job_key_is_reported_before_torch_loads(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"steps": [
        {"train": {"config": str(ROOT / "configs" / "segmentation.yaml"),
                   "set": {"trian.epochs": 2}}},
        {"tile": {"rasters": [str(job)], "labels": str(job), "output": "t.zarr",
                  "fractions": "0.7,0.2"}},
    ]}))
    proc = _run("run", str(job))
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "unknown key 'trian'; did you mean 'train'?" in err
    assert "--fractions: '0.7,0.2' is not 3 comma-separated numbers" in err
    assert "HEAVY \n" in proc.stdout
