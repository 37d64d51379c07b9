"""Class names of the two sides of a score, and the one class list they are matched on.

Classes are matched by name, never by value: a prediction value 3 named ``water`` meets the
reference ``water`` whatever its value there. A name found on one side only stays in the
class list (its row or column of the confusion matrix is empty) and is reported; nothing is
guessed from similar names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio

#: The two sides of a score.
PREDICTIONS, LABELS = "predictions", "labels"


def raster_class_names(ds: rasterio.io.DatasetReader) -> dict[int, str] | None:
    """The class names a class raster carries in its metadata, or None.

    geovision's writers store ``classes`` (JSON ``[{id, name}, ...]``) in the dataset tags and
    ``class_<id>`` in band 1's tags; either is read.
    """
    tags = ds.tags()
    text = tags.get("classes")
    if text:
        try:
            records = json.loads(text)
            return {int(r["id"]): str(r["name"]) for r in records}
        except (ValueError, TypeError, KeyError):
            pass
    band = ds.tags(1)
    named = {int(k[6:]): str(v) for k, v in band.items()
             if k.startswith("class_") and k[6:].isdigit()}
    return named or None


@dataclass
class ClassList:
    """The classes of a score: the union of both sides' names, in order of appearance.

    Index ``k`` is row ``k`` and column ``k`` of the confusion matrix. Predictions' classes
    come first (in the order of their values), then names found only in the labels.

    Attributes:
        names: class names by index.
        values: per name, its value on each side where it has one (``{side: value}``).
        sides: per name, the sides it was found on.
    """

    names: list[str] = field(default_factory=list)
    values: dict[str, dict[str, int]] = field(default_factory=dict)
    sides: dict[str, set[str]] = field(default_factory=dict)

    def add(self, name: str, side: str, value: int | None = None) -> int:
        """The index of ``name`` (added at the end if new), found on ``side``.

        Args:
            name: the class name.
            side: :data:`PREDICTIONS` or :data:`LABELS`.
            value: its raster or field value on that side, if it has one (the first kept).
        """
        if name not in self.sides:
            self.names.append(name)
            self.sides[name] = set()
            self.values[name] = {}
        self.sides[name].add(side)
        if value is not None:
            self.values[name].setdefault(side, int(value))
        return self.names.index(name)

    def index(self, name: str) -> int:
        """The index of a known name."""
        return self.names.index(name)

    def on(self, side: str) -> list[str]:
        """Names found on ``side``."""
        return [n for n in self.names if side in self.sides[n]]

    def only_on(self, side: str) -> list[str]:
        """Names found on ``side`` and not on the other."""
        return [n for n in self.names if self.sides[n] == {side}]

    def __len__(self) -> int:
        return len(self.names)

    def describe(self) -> list[dict[str, Any]]:
        """The ``classes`` record of score.json."""
        return [{"index": i, "name": n,
                 "prediction_value": self.values[n].get(PREDICTIONS),
                 "label_value": self.values[n].get(LABELS),
                 "in_predictions": PREDICTIONS in self.sides[n],
                 "in_labels": LABELS in self.sides[n]}
                for i, n in enumerate(self.names)]


@dataclass(frozen=True)
class ValueLookup:
    """Raster values to class indices.

    Rasters of 8- and 16-bit integers index a table covering every value of their type
    (65,536 entries at most); wider types search the sorted known values.

    Attributes:
        values: sorted known raster values.
        indices: the class index of each value.
    """

    values: np.ndarray
    indices: np.ndarray

    @classmethod
    def of(cls, mapping: dict[int, int]) -> ValueLookup:
        """A lookup from ``{raster value: class index}``."""
        keys = np.array(sorted(mapping), dtype=np.int64)
        return cls(keys, np.array([mapping[int(k)] for k in keys], dtype=np.int64))

    def __call__(self, data: np.ndarray) -> np.ndarray:
        """Class index (int32) of every pixel; -1 where the value is not in the table."""
        if data.dtype.kind in "iu" and data.dtype.itemsize <= 2:
            info = np.iinfo(data.dtype)
            table = np.full(int(info.max) - int(info.min) + 1, -1, dtype=np.int32)
            inside = (self.values >= info.min) & (self.values <= info.max)
            table[self.values[inside] - int(info.min)] = self.indices[inside]
            if info.min == 0:
                return table[data]
            return table[data.astype(np.int32) - int(info.min)]
        if len(self.values) == 0:
            return np.full(data.shape, -1, dtype=np.int32)
        flat = data.astype(np.int64, copy=False)
        pos = np.clip(np.searchsorted(self.values, flat), 0, len(self.values) - 1)
        hit = self.values[pos] == flat
        return np.where(hit, self.indices[pos], -1).astype(np.int32)
