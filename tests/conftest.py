"""Shared fixtures: small synthetic scenes with known answers, and the real samples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geovision.synthetic import Sample, make_sample

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GEOVISION_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def sample_two_crs(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """Two 320x320 4-band uint8 rasters in EPSG:32633 and EPSG:3035, labels in EPSG:4326."""
    out = tmp_path_factory.mktemp("two_crs")
    return make_sample(out, size=320, crss=("EPSG:32633", "EPSG:3035"), seed=3)


@pytest.fixture(scope="session")
def sample_utm(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """One 384x256 uint16 raster in EPSG:32633 with a nodata corner, labels in EPSG:4326."""
    out = tmp_path_factory.mktemp("utm")
    return make_sample(out, size=(384, 256), dtype="uint16", seed=5)


@pytest.fixture(scope="session")
def luxembourg() -> Path:
    """The real Luxembourg sample of ../shared/data (skipped when it is not there)."""
    path = SHARED_DATA / "luxembourg"
    if not (path / "elev.tif").exists():
        pytest.skip(f"shared sample data not found at {path}")
    return path
