"""Class ids: from label values to the ids of the class raster, with names and colours.

Three ways to number classes, all giving one :class:`ClassTable`:

- :func:`classes_from_values`: the distinct values of a label field, sorted (numerically when
  every value is a number: codes 2 and 10 become ids 1 and 2, named ``"2"`` and ``"10"``);
- :func:`geovision.geo.classmap.read_class_map`: a YAML or JSON file (``--class-map``) that
  fixes ids, names and colours, so that ids can equal the user's codes;
- :func:`classes_by_value`: a raster class map's own values are the ids (0 background).

Id 0 is always ``background`` (no label covers the pixel) and 255 is ``ignore_index``
(nodata, or unlabelled by choice); classes are 1..254.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from geovision.errors import InputError
from geovision.formats import BACKGROUND, IGNORE_INDEX

#: Highest class id (ids are stored as uint8 and the next value is ignore_index).
MAX_CLASS_ID = IGNORE_INDEX - 1
#: What a class map may do with values it does not list.
UNLISTED = ("drop", "background", "ignore")
BACKGROUND_NAME = "background"
BACKGROUND_COLOR = "#000000"
#: Colours given to classes without one, by id (1 -> the first).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
)
#: LUT entry of a value that is dropped (see :meth:`ClassTable.map_array`).
_DROP = -1
#: LUT entry of a value that has no class and may not be dropped silently.
_BAD = -2


def palette_color(class_id: int) -> str:
    """The default colour of a class id (black for background)."""
    return BACKGROUND_COLOR if class_id == BACKGROUND else PALETTE[(class_id - 1) % len(PALETTE)]


def value_key(value: Any) -> str:
    """A label value as text, the key that matches it to a class.

    Numbers that are whole are written without a decimal part, so ``2``, ``2.0`` and ``"2"``
    are one class, ``"2"``; other values are their text.
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isfinite(f) and f.is_integer():
            return str(int(f))
        return repr(f)
    return str(value)


def number(key: str) -> float | None:
    """A value key as a finite number, or None when it is not one."""
    try:
        f = float(key)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def sort_values(keys: Iterable[str]) -> list[str]:
    """Distinct value keys in class order: numerically when all are numbers, else as text."""
    unique = set(keys)
    numbers = {k: number(k) for k in unique}
    if unique and all(v is not None for v in numbers.values()):
        return sorted(unique, key=lambda k: (numbers[k], k))
    return sorted(unique)


@dataclass(frozen=True)
class ClassInfo:
    """One class: its id in the class raster, its name and its colour (``#rrggbb``)."""

    id: int
    name: str
    color: str

    def record(self) -> dict[str, Any]:
        """The class record of the tile dataset and model bundle."""
        return {"id": self.id, "name": self.name, "color": self.color}


@dataclass(frozen=True)
class ClassTable:
    """The classes of a dataset and how label values map to them.

    Attributes:
        classes: background (id 0) first, then the classes by id; ids may have gaps when a
            class map fixes them (e.g. 0, 10, 20, ...).
        values: (value key, id) pairs; the id is a class id, :data:`BACKGROUND` or
            :data:`IGNORE_INDEX`. Keys are :func:`value_key` texts.
        unlisted: what values not in ``values`` become: ``drop``, ``background`` or ``ignore``.
        by_value: a raster's integer values 1..254 are their own ids (no class map given).
        source: the class-map file, or None.
        colors: colours by id for classes found later (:meth:`with_seen`), e.g. a raster's
            colour table.
    """

    classes: tuple[ClassInfo, ...]
    values: tuple[tuple[str, int], ...] = ()
    unlisted: str = "drop"
    by_value: bool = False
    source: str | None = None
    colors: tuple[tuple[int, str], ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def lookup(self) -> dict[str, int]:
        """Value key -> id."""
        return dict(self.values)

    @property
    def ids(self) -> list[int]:
        """Class ids, background first."""
        return [c.id for c in self.classes]

    @property
    def names(self) -> list[str]:
        """Class names in the order of :attr:`classes`."""
        return [c.name for c in self.classes]

    @property
    def num_outputs(self) -> int:
        """Scores a model must give per pixel: the highest id + 1 (ids may have gaps)."""
        return max(self.ids) + 1

    def records(self) -> list[dict[str, Any]]:
        """``attrs.classes`` of the tile dataset."""
        return [c.record() for c in self.classes]

    def describe(self) -> dict[str, Any]:
        """How values became classes, for ``attrs.labels.class_map``."""
        return {"source": self.source, "values": dict(self.values), "unlisted": self.unlisted,
                "by_value": self.by_value}

    def id_of(self, value: Any) -> int | None:
        """The id of a label value (a class, BACKGROUND or IGNORE_INDEX); None: drop it.

        Raises:
            InputError: the table numbers a raster by value and the value is no class id.
        """
        key = value_key(value)
        if key in self.lookup:
            return self.lookup[key]
        if self.by_value:
            n = number(key)
            if n is not None and n.is_integer() and 0 <= n <= MAX_CLASS_ID:
                return int(n)
            raise InputError(_by_value_error([key]))
        return _UNLISTED_ID[self.unlisted]

    def ids_of(self, values: Iterable[Any]) -> np.ndarray:
        """Class ids of vector features' label values (int16; -1 where a value is dropped).

        An id may be BACKGROUND (burned as 0) or IGNORE_INDEX (burned as 255) when the class
        map says so.

        Raises:
            InputError: a value has no class (a table numbering a raster by value).
        """
        ids: dict[tuple[type, Any], int] = {}  # one lookup per distinct value
        out = []
        for v in values:
            key = _value_key(v)
            got = ids.get(key) if key is not None else None
            if got is None:
                found = self.id_of(v)
                got = -1 if found is None else found
                if key is not None:
                    ids[key] = got
            out.append(got)
        return np.array(out, dtype=np.int16)

    def map_array(self, values: np.ndarray, *, what: str = "labels") -> tuple[np.ndarray, int]:
        """Class ids of an array of label values, and how many values were dropped.

        Dropped values (``unlisted: drop``) become IGNORE_INDEX in the result.

        Args:
            values: label values of any numeric dtype.
            what: names the input in error messages (e.g. the label raster's path).

        Returns:
            ``(ids, dropped)``: uint8 ids of the same shape, and the count of dropped values.

        Raises:
            InputError: a value has no class and may not be dropped (a raster numbered by
                value holds a value outside 0..254).
        """
        arr = np.asarray(values)
        if arr.dtype.kind in "biu" and arr.dtype.itemsize <= 2:
            lut, offset = self._lut(arr.dtype)
            coded = lut[arr.astype(np.int64) + offset] if offset else lut[arr]
        else:
            uniq, inverse = np.unique(arr, return_inverse=True)
            coded = self._codes(uniq)[inverse.reshape(arr.shape)]
        if coded.size and int(coded.min()) < 0:
            bad = coded == _BAD
            if bad.any():
                found = sorted({value_key(v) for v in np.unique(arr[bad])[:10]}, key=_sort_key)
                raise InputError(f"{what}: {_by_value_error(found)}")
            drop = coded == _DROP
            dropped = int(drop.sum())
            coded = np.where(drop, IGNORE_INDEX, coded)
        else:
            dropped = 0
        return coded.astype(np.uint8), dropped

    def _codes(self, uniq: np.ndarray) -> np.ndarray:
        """Id (or _DROP / _BAD) of each value; whole numbers vectorized, others one by one."""
        if uniq.dtype.kind in "biu":
            v = uniq.astype(np.int64)
            if self.by_value:
                out = np.where((v >= 0) & (v <= MAX_CLASS_ID), v, _BAD).astype(np.int16)
            else:
                unlisted = _UNLISTED_ID[self.unlisted]
                out = np.full(len(v), _DROP if unlisted is None else unlisted, dtype=np.int16)
            for key, cid in self.values:
                n = number(key)
                if n is not None and n.is_integer():
                    out[v == int(n)] = cid
            return out
        out = np.empty(len(uniq), dtype=np.int16)
        for i, value in enumerate(uniq.tolist()):
            try:
                got = self.id_of(value)
            except InputError:
                got = _BAD
            out[i] = _DROP if got is None else got
        return out

    def _lut(self, dtype: np.dtype) -> tuple[np.ndarray, int]:
        """A table indexed by every value of a small integer dtype (cached per dtype)."""
        key = f"lut-{dtype.str}"
        if key not in self._cache:
            info = np.iinfo(dtype) if dtype.kind != "b" else np.iinfo(np.uint8)
            offset = -int(info.min)
            values = np.arange(int(info.min), int(info.max) + 1, dtype=np.int64)
            self._cache[key] = (self._codes(values), offset)
        return self._cache[key]

    def with_seen(self, ids: Iterable[int]) -> ClassTable:
        """A by-value table with a class for each id seen in the labels and not yet listed.

        Raster labels numbered by value learn their classes while they are read; pass the
        ids found (e.g. the non-zero bins of the class pixel counts).
        """
        known = set(self.ids)
        extra = sorted({int(i) for i in ids} - known - {IGNORE_INDEX})
        if not extra:
            return self
        colors = dict(self.colors)
        added = tuple(ClassInfo(i, str(i), colors.get(i, palette_color(i))) for i in extra)
        merged = tuple(sorted((*self.classes, *added), key=lambda c: c.id))
        return ClassTable(classes=merged, values=self.values, unlisted=self.unlisted,
                          by_value=self.by_value, source=self.source, colors=self.colors)


_UNLISTED_ID: dict[str, int | None] = {"drop": None, "background": BACKGROUND,
                                       "ignore": IGNORE_INDEX}


def _sort_key(key: str) -> tuple[int, float, str]:
    n = number(key)
    return (0, n, key) if n is not None else (1, 0.0, key)


def _by_value_error(found: list[str]) -> str:
    return (f"label value(s) {', '.join(found)} are not class ids (a raster's values are its "
            f"class ids 1..{MAX_CLASS_ID}, 0 background, when no class map is given; 255 is "
            "ignore_index); give --class-map FILE mapping the values to ids, or set the "
            "raster's nodata")


def background_class() -> ClassInfo:
    """Class 0, ``background``."""
    return ClassInfo(BACKGROUND, BACKGROUND_NAME, BACKGROUND_COLOR)


def single_class(name: str) -> ClassTable:
    """One class, id 1 (labels without a class field); every feature maps to it."""
    return ClassTable(classes=(background_class(), ClassInfo(1, str(name), palette_color(1))),
                      unlisted="drop")


def _value_key(v: Any) -> tuple[type, Any] | None:
    """A dictionary key for a label value (``2`` and ``True`` apart); None if unhashable."""
    try:
        hash(v)
    except TypeError:
        return None
    return (type(v), v)


def _distinct(values: Iterable[Any]) -> list[Any]:
    """The values once each (``2`` and ``True`` stay apart: they give different keys)."""
    seen: set[tuple[type, Any]] = set()
    out = []
    for v in values:
        key = _value_key(v)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        out.append(v)
    return out


def classes_from_values(values: Iterable[Any], *, what: str = "labels") -> ClassTable:
    """Number the distinct values of a label field 1..K in sorted order.

    Values sort numerically when every one is a number (codes 2 and 10 -> ids 1 and 2, named
    ``"2"`` and ``"10"``), else as text. Names are the values as text (:func:`value_key`).

    Args:
        values: the field's values (nulls removed).
        what: names the input in error messages (e.g. ``"labels.gpkg: field 'code'"``).

    Raises:
        InputError: more than 254 distinct values, or a value named ``background``.
    """
    keys = sort_values(value_key(v) for v in _distinct(values))
    if len(keys) > MAX_CLASS_ID:
        raise InputError(
            f"{what}: {len(keys)} distinct values; at most {MAX_CLASS_ID} classes fit in the "
            f"class raster (id 0 is background, {IGNORE_INDEX} is ignore_index); merge "
            "classes with --class-map FILE (several values may share an id)")
    if BACKGROUND_NAME in keys:
        raise InputError(
            f"{what}: the value '{BACKGROUND_NAME}' is the name of class 0 (pixels no label "
            "covers); rename it in the file, or give --class-map FILE with "
            f"'{BACKGROUND_NAME}: {BACKGROUND_NAME}' to make those features background")
    classes = [background_class()] + [
        ClassInfo(i, k, palette_color(i)) for i, k in enumerate(keys, start=1)]
    return ClassTable(classes=tuple(classes),
                      values=tuple((k, i) for i, k in enumerate(keys, start=1)))


def classes_by_value(
    names: Mapping[int, str] | None = None, colors: Mapping[int, str] | None = None
) -> ClassTable:
    """A raster class map numbered by its own values: value v (1..254) is class v.

    The classes listed are those ``names`` gives (a raster's category names); others are
    added with :meth:`ClassTable.with_seen` as they are found. Value 0 is background.

    Args:
        names: class names by value (e.g. from the raster's category names).
        colors: ``#rrggbb`` by value (e.g. from its colour table).
    """
    names = dict(names or {})
    colors = dict(colors or {})
    classes = [background_class()]
    for v in sorted(k for k in names if 1 <= k <= MAX_CLASS_ID):
        classes.append(ClassInfo(v, names[v], colors.get(v, palette_color(v))))
    return ClassTable(classes=tuple(classes), by_value=True, unlisted="ignore",
                      colors=tuple(sorted(colors.items())))
