"""Band names: the alias table and the mapping of a dataset's bands onto the weights'."""

import pytest

from geovision.formats import bands_from_json
from geovision.models.bands import (
    RGB,
    SENTINEL2_L1C,
    SENTINEL2_L2A,
    band_names,
    canonical_band,
    match_bands,
)


@pytest.mark.parametrize(("names", "canonical"), [
    (["B01", "B1", "SR_B1", "coastal", "Coastal aerosol", "landsat:B1"], "coastal"),
    (["B02", "B2", "SR_B2", "blue", "Blue", "BLUE", "b", "s2:B02", "l8:B2"], "blue"),
    (["B03", "B3", "SR_B3", "green", "G", "landsat9:B3"], "green"),
    (["B04", "B4", "SR_B4", "red", "Red", "r", "landsat:B4", "sentinel2:B4"], "red"),
    (["B05", "B5", "rededge1", "rededge071", "Red Edge 1"], "rededge1"),
    (["B06", "rededge2", "rededge075"], "rededge2"),
    (["B07", "rededge3", "rededge078"], "rededge3"),
    (["B08", "B8", "nir", "NIR", "n", "Near Infrared", "near-infrared"], "nir"),
    (["B8A", "B08A", "nir08", "SR_B5", "landsat:B5", "L8:B5", "narrow nir"], "nir08"),
    (["B09", "nir09", "water vapour"], "nir09"),
    (["B10", "cirrus", "landsat:B9"], "cirrus"),
    (["B11", "swir16", "SR_B6", "SWIR1", "swir_1", "landsat:B6"], "swir16"),
    (["B12", "swir22", "SR_B7", "swir2", "landsat:B7"], "swir22"),
    (["pan", "panchromatic", "landsat:B8"], "pan"),
    (["ST_B10", "lwir11", "tirs1", "thermal", "landsat:B10"], "lwir11"),
    (["lwir12", "tirs2", "landsat:B11"], "lwir12"),
    (["VV", "vv"], "vv"),
])
def test_every_alias_gives_the_canonical_name(names, canonical):
    assert {n: canonical_band(n) for n in names} == dict.fromkeys(names, canonical)


@pytest.mark.parametrize("name", ["band1", "Band 3", "3", "b13", "channel_2", "", "layer4"])
def test_generic_names_say_nothing(name):
    assert canonical_band(name) is None


def test_unknown_names_compare_as_they_are():
    assert canonical_band("NDVI") == canonical_band("ndvi") == "ndvi"


def test_dataset_bands_give_names():
    bands = [{"index": 1, "name": "red", "dtype": "uint8"},
             {"index": 2, "name": "", "dtype": "uint8"}]
    assert band_names(bands) == ["red", "band2"]
    assert band_names(["B04", "B03"]) == ["B04", "B03"]
    assert band_names(bands_from_json(bands)) == ["red", "band2"]  # a TileInfo's records


def test_rgb_weights_on_a_six_band_dataset():
    m = match_bands(RGB, ["blue", "green", "red", "nir", "swir16", "swir22"])
    assert m.index == (2, 1, 0, None, None, None)
    assert m.matched == 3
    assert m.describe() == ("blue<-blue, green<-green, red<-red, nir: mean kernel, "
                            "swir16: mean kernel, swir22: mean kernel")


def test_sentinel2_weights_on_landsat_names():
    m = match_bands(SENTINEL2_L1C, ["SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7",
                                    "ST_B10"])
    assert m.index == (1, 2, 3, 8, 11, 12, None)  # SR_B5 is nir08 = B8A
    assert m.how[3] == "name"


def test_nearest_band_stands_in():
    m = match_bands(SENTINEL2_L2A[:8], ["red", "nir08"])  # B01..B08: no B8A
    assert m.index == (3, 7)
    assert m.how == ("name", "nearest")
    assert "nir08<-B08 (nearest)" in m.describe()


def test_unnamed_bands_match_by_position_only_when_counts_agree():
    assert match_bands(RGB, ["band1", "band2", "band3"]).index == (0, 1, 2)
    assert match_bands(RGB, ["band1", "band2", "band3"]).how == ("position",) * 3
    assert match_bands(RGB, ["band1", "band2", "band3", "band4"]).index == (None,) * 4
    assert match_bands(RGB, ["band1", "red", "band3"]).index == (None, 0, None)
