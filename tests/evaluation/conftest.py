"""Fixtures of the scoring tests (helpers live in score_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation.score_helpers import Scene, lux_map


@pytest.fixture(scope="session")
def lux_scene(luxembourg: Path, tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """A perturbed district map of Luxembourg: 20% of the pixels get a random class."""
    return lux_map(luxembourg, tmp_path_factory.mktemp("lux_scene"))
