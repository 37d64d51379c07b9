import re

import numpy as np
import pytest

from geovision.errors import InputError
from geovision.geo.classes import classes_by_value, classes_from_values, value_key


def test_numeric_codes_sort_numerically():
    table = classes_from_values([10, 2, 10, 2.0, 1])
    assert table.records()[1:] == [
        {"id": 1, "name": "1", "color": "#1f77b4"},
        {"id": 2, "name": "2", "color": "#ff7f0e"},
        {"id": 3, "name": "10", "color": "#2ca02c"},
    ]
    assert table.id_of(10) == 3 and table.id_of("2") == 2 and table.id_of(2.0) == 2
    assert classes_from_values(["10", "2", "2.5"]).names == ["background", "2", "2.5", "10"]


def test_text_values_sort_as_text():
    assert classes_from_values(["b", "a", "10", "9"]).names == ["background", "10", "9", "a",
                                                                  "b"]


def test_value_keys():
    assert [value_key(v) for v in (2, 2.0, np.int64(2), np.float32(2.5), "x", True)] == [
        "2", "2", "2", "2.5", "x", "True"]


def test_too_many_values_and_background_value():
    with pytest.raises(InputError, match=re.escape(
            "labels.gpkg: field 'code': 300 distinct values; at most 254 classes fit in the "
            "class raster (id 0 is background, 255 is ignore_index); merge classes with "
            "--class-map FILE (several values may share an id)")):
        classes_from_values(range(300), what="labels.gpkg: field 'code'")
    with pytest.raises(InputError, match="the value 'background' is the name of class 0"):
        classes_from_values(["background", "water"])


def test_by_value_tables():
    table = classes_by_value({3: "water", 0: "nothing"}, {3: "#0000ff", 7: "#00ff00"})
    assert table.records() == [{"id": 0, "name": "background", "color": "#000000"},
                               {"id": 3, "name": "water", "color": "#0000ff"}]
    ids, dropped = table.map_array(np.array([0, 3, 7], dtype=np.uint16))
    assert ids.tolist() == [0, 3, 7] and dropped == 0
    seen = table.with_seen([0, 3, 7, 255])
    assert seen.records()[2] == {"id": 7, "name": "7", "color": "#00ff00"}
    with pytest.raises(InputError, match=re.escape(
            "lc.tif: label value(s) 255, 300 are not class ids (a raster's values are its "
            "class ids 1..254, 0 background, when no class map is given; 255 is "
            "ignore_index); give --class-map FILE mapping the values to ids, or set the "
            "raster's nodata")):
        table.map_array(np.array([1, 255, 300], dtype=np.uint16), what="lc.tif")
    with pytest.raises(InputError, match=r"label value\(s\) -1, 2.5 are not class ids"):
        table.map_array(np.array([-1.0, 2.5, 3.0]))
