import json

import numpy as np
import pytest

from geovision.errors import InputError, InputFileError
from geovision.formats import IGNORE_INDEX
from geovision.geo.classes import palette_color
from geovision.geo.classmap import parse_class_map, read_class_map

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
        {"id": 20, "name": "shrubland", "color": palette_color(20)},
        {"id": 30, "name": "grassland", "color": palette_color(30)},
        {"id": 44, "name": "wetland", "color": palette_color(44)},
    ]
    assert table.num_outputs == 45
    values = np.array([[10, 20, 30, 40], [41, 0, 255, 99]], dtype=np.uint8)
    ids, dropped = table.map_array(values)
    assert ids.tolist() == [[10, 20, 30, 44], [44, 0, 255, 255]] and dropped == 0
    assert table.id_of(99) == IGNORE_INDEX and table.describe()["unlisted"] == "ignore"


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
