"""Values fixed by geovision's file formats (DESIGN.md), each with one name and one meaning.

Several of them happen to be 255; they are different things and are named apart. Classes and
bands, written as records in tile stores, model bundles and run summaries, are read into the
frozen :class:`ClassInfo` and :class:`BandInfo`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Split names, in the order of their codes in a tile store's ``split`` array (0, 1, 2).
SPLITS = ("train", "val", "test")
#: Class id of pixels that no label covers (class 0, ``background``).
BACKGROUND = 0
#: Mask value of a tile store for pixels that count for nothing (nodata, unlabeled): no loss
#: or metric sees them.
IGNORE_INDEX = 255
#: Class id of a prediction raster where the scene holds no data.
CLASS_NODATA = 255
#: Stored value of a compact (uint8) probability raster where the scene holds no data.
PROB_NODATA = 255
#: Compact probabilities store ``round(p * PROB_SCALE)`` in uint8: 0..254 <-> 0..1.
PROB_SCALE = 254.0


def split_code(name: str) -> int:
    """The code of a split in a tile store's ``split`` array."""
    return SPLITS.index(name)


@dataclass(frozen=True)
class ClassInfo:
    """A class of a tile dataset or model: ``{id, name, color}`` in the files.

    Attributes:
        id: the class id (0 is background).
        name: its name.
        color: ``#rrggbb``, or None when the file gives none.
    """

    id: int
    name: str
    color: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The class as the files write it."""
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.color is not None:
            out["color"] = self.color
        return out

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> ClassInfo:
        """A class from its record in a file."""
        color = record.get("color")
        return cls(int(record["id"]), str(record["name"]),
                   None if color is None else str(color))


@dataclass(frozen=True)
class BandInfo:
    """A band of a tile dataset or model: ``{index, name, dtype}`` in the files.

    Attributes:
        index: its 1-based index in the source rasters.
        name: its name.
        dtype: its pixel type, or None when the file gives none.
    """

    index: int
    name: str
    dtype: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The band as the files write it."""
        out: dict[str, Any] = {"index": self.index, "name": self.name}
        if self.dtype is not None:
            out["dtype"] = self.dtype
        return out

    @classmethod
    def from_json(cls, record: Mapping[str, Any], position: int = 0) -> BandInfo:
        """A band from its record in a file (``position``: its place, for a missing index)."""
        dtype = record.get("dtype")
        return cls(int(record.get("index", position + 1)), str(record.get("name", "")),
                   None if dtype is None else str(dtype))


def classes_from_json(records: Sequence[Mapping[str, Any]]) -> tuple[ClassInfo, ...]:
    """Classes from their records in a file."""
    return tuple(ClassInfo.from_json(r) for r in records)


def class_ids(classes: Sequence[ClassInfo]) -> tuple[int, ...] | None:
    """The user's class id of each model output (index ``k`` -> ``classes[k].id``).

    A model is trained on compact indices ``0 .. K-1``, one per class in the order of the
    store's ``classes`` (background first); a store written with ``--class-map`` may keep
    the user's codes as ids (``0, 2, 10``). Every output that writes class values maps the
    model's indices back to these ids.

    Returns:
        The ids by index, or None when they are ``0 .. K-1`` already (nothing to map).
    """
    ids = tuple(c.id for c in classes)
    return None if ids == tuple(range(len(ids))) else ids


def id_lookup(classes: Sequence[ClassInfo], ignore: int = IGNORE_INDEX) -> np.ndarray | None:
    """Lookup table from stored class ids (uint8 mask values) to model indices.

    Entry ``id`` is the class's index in ``classes``; ``ignore`` stays ``ignore`` and a value
    that names no class becomes ``ignore`` too (no loss or metric sees it).

    Returns:
        A uint8 array of 256 entries, or None when ids are ``0 .. K-1`` (nothing to map).
    """
    if class_ids(classes) is None:
        return None
    lut = np.full(256, ignore, dtype=np.uint8)
    for index, c in enumerate(classes):
        if 0 <= c.id < 256 and c.id != ignore:
            lut[c.id] = index
    return lut


def ids_of(indices: np.ndarray, ids: Sequence[int] | None, nodata: int = CLASS_NODATA,
           ) -> np.ndarray:
    """Model indices mapped to the user's class ids (``ids`` from :func:`class_ids`).

    ``nodata`` stays ``nodata``; with ``ids`` None the array is returned as it is.
    """
    if ids is None:
        return indices
    lut = np.full(256, nodata, dtype=np.int64)
    lut[: len(ids)] = ids
    lut[nodata] = nodata
    return lut[np.asarray(indices, dtype=np.int64)].astype(indices.dtype, copy=False)


def bands_from_json(records: Sequence[Mapping[str, Any]]) -> tuple[BandInfo, ...]:
    """Bands from their records in a file."""
    return tuple(BandInfo.from_json(r, i) for i, r in enumerate(records))
