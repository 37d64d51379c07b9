"""Class names of rasters and class maps, and raster values to class indices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geovision.errors import InputError
from geovision.evaluation.classes import LABELS, PREDICTIONS, ClassList, ValueLookup, read_class_map


@pytest.mark.parametrize("text", [
    "10: forest\n20: water\n",
    "{\"10\": {\"name\": \"forest\"}, \"20\": {\"name\": \"water\", \"color\": \"#00f\"}}",
    "classes:\n  - {id: 10, name: forest}\n  - {id: 20, name: water}\n",
    "f: {id: 10, name: forest}\nw: {id: 20, name: water}\n",
])
def test_class_map_forms(tmp_path: Path, text: str) -> None:
    (tmp_path / "map.yaml").write_text(text)
    assert read_class_map(tmp_path / "map.yaml") == {10: "forest", 20: "water"}


def test_class_map_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("[{id: 1, name: forest}, {id: 1, name: water}]")
    with pytest.raises(InputError, match=r"value 1 is named twice \('forest', 'water'\)"):
        read_class_map(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("forest: {name: forest}\n")
    with pytest.raises(InputError, match=r"'forest' is not a whole-number raster value"):
        read_class_map(tmp_path / "b.yaml")


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "uint32"])
def test_value_lookup_for_every_integer_type(dtype: str) -> None:
    info = np.iinfo(dtype)
    known = {int(info.min): 0, 7: 1, int(info.max): 2}
    data = np.array([[info.min, 7, 8], [info.max, 0, 7]], dtype=dtype)
    out = ValueLookup.of(known)(data)
    expected = [[0, 1, -1], [2, -1 if info.min != 0 else 0, 1]]
    assert out.tolist() == expected


def test_class_list_keeps_sides_apart() -> None:
    classes = ClassList()
    assert classes.add("background", PREDICTIONS, 0) == 0
    assert classes.add("water", PREDICTIONS, 1) == 1
    assert classes.add("water", LABELS, 5) == 1
    assert classes.add("forest", LABELS) == 2
    assert classes.only_on(PREDICTIONS) == ["background"]
    assert classes.only_on(LABELS) == ["forest"]
    assert classes.describe()[1] == {"index": 1, "name": "water", "prediction_value": 1,
                                     "label_value": 5, "in_predictions": True,
                                     "in_labels": True}
