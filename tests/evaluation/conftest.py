"""Fixtures of the scoring tests (helpers live in score_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from geovision.formats import CLASS_NODATA as NODATA
from tests.evaluation.score_helpers import Scene, burn_districts, write_class_raster


@pytest.fixture(scope="session")
def lux_scene(luxembourg: Path, tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """A perturbed district map of Luxembourg: 20% of the pixels get a random class."""
    out = tmp_path_factory.mktemp("lux_scene")
    labels = luxembourg / "lux.shp"
    with rasterio.open(luxembourg / "elev.tif") as ds:
        crs, transform, shape = ds.crs, ds.transform, ds.shape
        valid = ds.read_masks(1) > 0
    names = {0: "background", 1: "Diekirch", 2: "Grevenmacher", 3: "Luxembourg"}
    truth = burn_districts(labels, shape, transform, names)
    rng = np.random.default_rng(0)
    predicted = truth.copy()
    flip = rng.random(shape) < 0.2
    predicted[flip] = rng.integers(0, 4, int(flip.sum()))
    predicted[~valid] = NODATA
    path = write_class_raster(out / "lux.class.tif", predicted, crs, transform, names)
    return Scene(labels, path, crs, transform, names, truth, predicted)


