"""The scene bands infer reads for a model: by name, by the same band under another name, or
in order with a warning."""

from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from affine import Affine

from geovision.errors import InputError
from geovision.geo.scenes import scenes_for
from geovision.inference.checks import model_bands
from geovision.options.infer import InferOptions


@pytest.fixture
def scene(tmp_path):
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=4, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 0)) as dst:
        dst.write(np.arange(4, dtype=np.uint8).repeat(64).reshape(4, 8, 8))
        dst.descriptions = ("blue", "green", "red", "nir")
    return scenes_for([str(path)], InferOptions())[0]


def _model(*names):
    return SimpleNamespace(bands=[SimpleNamespace(name=n) for n in names])


def test_the_same_bands_by_name_in_the_models_order(scene):
    assert model_bands(scene, _model("red", "green", "blue"), InferOptions()).bands == (3, 2, 1)


def test_sentinel_asset_names_find_the_scenes_named_bands(scene, caplog):
    caplog.set_level("INFO")
    got = model_bands(scene, _model("B04", "B03", "B02", "B08"), InferOptions())
    assert got.bands == (3, 2, 1, 4)
    assert "reading bands red, green, blue, nir as the model's B04, B03, B02, B08" in caplog.text


def test_unknown_names_of_the_same_count_are_read_in_order_with_a_warning(scene, caplog):
    got = model_bands(scene, _model("a", "b", "c", "d"), InferOptions())
    assert got.bands == (1, 2, 3, 4)
    assert "band names (blue, green, red, nir) are not the model's (a, b, c, d)" in caplog.text


def test_missing_bands_are_refused_naming_them(scene):
    with pytest.raises(InputError, match=r"swir16 is not among its names"):
        model_bands(scene, _model("red", "green", "blue", "nir", "swir16"), InferOptions())
