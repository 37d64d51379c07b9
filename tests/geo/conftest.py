"""Fixtures of the geo tests: the real North Carolina sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("GEOVISION_SHARED_DATA",
                                  Path(__file__).resolve().parents[2].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def north_carolina() -> Path:
    """``nc.gpkg`` of ../shared/data (skipped when it is not there)."""
    path = SHARED_DATA / "north-carolina" / "nc.gpkg"
    if not path.exists():
        pytest.skip(f"shared sample data not found at {path}")
    return path
