import json
import re

import numpy as np
import pytest

from geovision.errors import InputError, InputFileError
from geovision.geo.classmap import (
    IGNORE_INDEX,
    classes_by_value,
    classes_from_values,
    parse_class_map,
    read_class_map,
    value_key,
)


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


CLASS_MAP = """
unlisted: ignore
classes:
  10: {name: tree cover, color: "#006400"}
  20: {id: 20, name: shrubland}
  30: grassland
  40: 44
  41: {id: 44, name: wetland}
  0: background
  255: ignore
"""


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_class_map_keeps_user_codes(tmp_path, suffix):
    import yaml

    doc = yaml.safe_load(CLASS_MAP)
    path = tmp_path / f"classes{suffix}"
    path.write_text(CLASS_MAP if suffix == ".yaml" else json.dumps(doc))
    table = read_class_map(path)
    assert table.records() == [
        {"id": 0, "name": "background", "color": "#000000"},
        {"id": 10, "name": "tree cover", "color": "#006400"},
        {"id": 20, "name": "shrubland", "color": palette(20)},
        {"id": 30, "name": "grassland", "color": palette(30)},
        {"id": 44, "name": "wetland", "color": palette(44)},
    ]
    assert table.num_outputs == 45
    values = np.array([[10, 20, 30, 40], [41, 0, 255, 99]], dtype=np.uint8)
    ids, dropped = table.map_array(values)
    assert ids.tolist() == [[10, 20, 30, 44], [44, 0, 255, 255]] and dropped == 0
    assert table.id_of(99) == IGNORE_INDEX and table.describe()["unlisted"] == "ignore"


def palette(i):
    from geovision.geo.classmap import palette_color

    return palette_color(i)


def test_unlisted_drop_counts_and_background():
    doc = {"classes": {1: "water", 2: "forest"}}
    drop = parse_class_map(doc)
    ids, dropped = drop.map_array(np.array([1, 2, 3, 3, 7], dtype=np.uint16))
    assert ids.tolist() == [1, 2, 255, 255, 255] and dropped == 3
    assert drop.id_of(3) is None
    bg = parse_class_map({**doc, "unlisted": "background"})
    assert bg.map_array(np.array([1, 3], dtype=np.int32))[0].tolist() == [1, 0]
    # float labels go through the same table
    assert drop.map_array(np.array([1.0, 2.0, 2.5]))[0].tolist() == [1, 2, 255]


@pytest.mark.parametrize(("doc", "message"), [
    ({"classes": {10: {"id": 0}}},
     "m.yaml: value '10' is given id 0, which is background (pixels no label covers); write "
     "'10: background' to make it background, or choose an id in 1..254"),
    ({"classes": {10: {"id": 255, "name": "cloud"}}},
     "m.yaml: value '10' is given id 255, which is ignore_index (nodata); write '10: ignore' "
     "to ignore it, or choose an id in 1..254"),
    ({"classes": {300: "x"}},
     "m.yaml: value '300': id 300 is out of range; class ids are 1..254 (0 is background, "
     "255 ignore_index)"),
    ({"classes": {"urban": {"name": "urban"}}},
     "m.yaml: value 'urban': no id; give one (id: N, 1..254) since the value is not a whole "
     "number"),
    ({"classes": {1: {"id": 3, "name": "water"}, 2: {"id": 3, "name": "forest"}}},
     "m.yaml: value '2': id 3 is given to 'water' (value '1') and 'forest' (value '2'); give "
     "each class its own id, or the same name to merge the values into one class"),
    ({"classes": {1: {"id": 1, "name": "water"}, 2: {"id": 2, "name": "water"}}},
     "m.yaml: name 'water' is used by ids 1 and 2; give each class its own name (or the same "
     "id to merge them)"),
    ({"classes": {5: {"name": "background"}}},
     "m.yaml: value '5' is named 'background' with id 5; that name belongs to id 0: write "
     "'5: background' to make it background, or rename the class"),
    ({"classes": {5: "x", "5": "y"}},
     "m.yaml: value '5' is listed twice (as '5' too); list each value once"),
    ({"classes": {5: "x"}, "unlisted": "keep"},
     "m.yaml: unlisted: 'keep' is not a choice; choose one of drop, background, ignore"),
    ({"classes": {5: {"name": "x", "colour": "red"}}},
     "m.yaml: value '5': unknown key(s) colour; a class has id, name and color"),
    ({"classes": {5: {"color": "red"}}},
     "m.yaml: value '5': color 'red' is not a colour; write \"#rrggbb\" or [r, g, b] (0..255)"),
    ({"classes": {0: "background"}},
     "m.yaml: no class (every value maps to background or ignore); list at least one class "
     "with an id in 1..254"),
    ({"class": {1: "x"}},
     "m.yaml: no 'classes' mapping; write classes: {VALUE: {id, name, color}, ...} (see the "
     "README, section Your data)"),
])
def test_class_map_collisions(doc, message):
    with pytest.raises(InputError) as err:
        parse_class_map(doc, source="m.yaml")
    assert str(err.value) == message


def test_feature_ids_with_a_class_map():
    table = parse_class_map({"classes": {"water": 1, "forest": 2, "cloud": "ignore",
                                         "bare": "background"}})
    ids = table.ids_of(["forest", "water", "cloud", "bare", "road"])
    assert ids.dtype == np.int16 and ids.tolist() == [2, 1, 255, 0, -1]


def test_merging_values_into_one_class():
    table = parse_class_map({"classes": {11: {"id": 1, "name": "water"}, 12: 1,
                                         13: {"id": 1, "color": [0, 0, 255]}}})
    assert table.records()[1:] == [{"id": 1, "name": "water", "color": "#0000ff"}]
    assert table.map_array(np.array([11, 12, 13], np.uint8))[0].tolist() == [1, 1, 1]


def test_class_map_file_errors(tmp_path):
    with pytest.raises(InputFileError, match="nope.yaml: class map not found"):
        read_class_map(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(InputFileError, match="bad.json: not a YAML or JSON class map"):
        read_class_map(bad)


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
