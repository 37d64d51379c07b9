"""The class list of a score, and raster values to class indices."""

from __future__ import annotations

import numpy as np
import pytest

from geovision.evaluation.classes import LABELS, PREDICTIONS, ClassList, ValueLookup


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
