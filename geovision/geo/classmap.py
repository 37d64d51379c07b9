"""Class-map files (``--class-map``): label values to class ids, names and colours.

A class-map file, YAML or JSON::

    unlisted: drop            # values not listed: drop (default), background or ignore
    classes:
      10: {name: tree cover, color: "#006400"}   # id defaults to the value (an integer 1..254)
      20: {id: 2, name: shrubland}
      30: grassland           # a bare string names the class (id: the value)
      40: 4                   # a bare integer is the id
      41: 4                   # values may share an id (and its name): they merge
      0: background           # the value is background (id 0), e.g. "no class" in a raster
      255: ignore             # the value is ignored (ignore_index), e.g. "unknown"

``drop`` leaves a vector feature out (counted in ``attrs.labels.dropped``); for raster labels,
dropped pixels are ignored (ignore_index) and counted. Collisions (an id of 0 or 255, ids
outside 1..254, one id with two names, one name on two ids, a class named ``background``)
are refused with a message naming the value and the fix.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from geovision.errors import InputError, InputFileError
from geovision.geo.classes import (
    BACKGROUND,
    BACKGROUND_NAME,
    IGNORE_INDEX,
    MAX_CLASS_ID,
    UNLISTED,
    ClassInfo,
    ClassTable,
    background_class,
    number,
    palette_color,
    value_key,
)

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def read_class_map(path: str | os.PathLike[str]) -> ClassTable:
    """Read a class-map file (YAML or JSON; see the module's docstring for the format).

    Raises:
        InputFileError: the file is missing or not YAML/JSON.
        InputError: the map is malformed or its ids collide; the message names the value and
            the fix.
    """
    spath = str(path)
    try:
        text = Path(spath).read_text()
    except OSError as exc:
        raise InputFileError(f"{spath}: class map not found ({exc.strerror})") from exc
    try:
        doc = json.loads(text) if spath.lower().endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InputFileError(f"{spath}: not a YAML or JSON class map "
                             f"({str(exc).splitlines()[0]})") from exc
    return parse_class_map(doc, source=spath)


def parse_class_map(doc: Any, *, source: str = "--class-map") -> ClassTable:
    """Build a class table from a parsed class-map document (see :func:`read_class_map`).

    Raises:
        InputError: the document is malformed or its ids collide.
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("classes"), Mapping):
        raise InputError(f"{source}: no 'classes' mapping; write classes: {{VALUE: {{id, name, "
                         f"color}}, ...}} (see the README, section Your data)")
    extra = sorted(set(doc) - {"classes", "unlisted"})
    if extra:
        raise InputError(f"{source}: unknown key(s) {', '.join(map(str, extra))}; a class map "
                         "has 'classes' and 'unlisted'")
    unlisted = str(doc.get("unlisted", "drop"))
    if unlisted not in UNLISTED:
        raise InputError(f"{source}: unlisted: '{unlisted}' is not a choice; choose one of "
                         f"{', '.join(UNLISTED)}")
    values: dict[str, int] = {}
    named: dict[int, tuple[str | None, str | None, str]] = {}  # id -> (name, colour, value)
    for raw_value, spec in doc["classes"].items():
        key = value_key(raw_value)
        where = f"{source}: value '{key}'"
        if key in values:
            raise InputError(f"{where} is listed twice (as {raw_value!r} too); list each "
                             "value once")
        target = _parse_entry(spec, key, where)
        if isinstance(target, int):
            values[key] = target
            continue
        cid, name, color = target
        values[key] = cid
        if cid in named:
            name0, color0, value0 = named[cid]
            if name is not None and name0 is not None and name != name0:
                raise InputError(
                    f"{where}: id {cid} is given to '{name0}' (value '{value0}') and "
                    f"'{name}' (value '{key}'); give each class its own id, or the same name "
                    "to merge the values into one class")
            if color is not None and color0 is not None and color != color0:
                raise InputError(f"{where}: id {cid} is given colours {color0} and {color}; "
                                 "give a merged class one colour")
            named[cid] = (name0 or name, color0 or color, value0)
        else:
            named[cid] = (name, color, key)
    if not named:
        raise InputError(f"{source}: no class (every value maps to background or ignore); "
                         f"list at least one class with an id in 1..{MAX_CLASS_ID}")
    classes = [background_class()]
    seen_names: dict[str, int] = {}
    for cid, (name, color, value) in sorted(named.items()):
        final = name if name is not None else value
        if final == BACKGROUND_NAME:
            raise InputError(
                f"{source}: value '{value}' is named '{BACKGROUND_NAME}' with id {cid}; that "
                f"name belongs to id 0: write '{value}: background' to make it background, "
                "or rename the class")
        if final in seen_names:
            raise InputError(f"{source}: name '{final}' is used by ids {seen_names[final]} and "
                             f"{cid}; give each class its own name (or the same id to merge "
                             "them)")
        seen_names[final] = cid
        classes.append(ClassInfo(cid, final, color or palette_color(cid)))
    return ClassTable(classes=tuple(classes), values=tuple(values.items()), unlisted=unlisted,
                      source=source)


def _parse_entry(
    spec: Any, key: str, where: str
) -> int | tuple[int, str | None, str | None]:
    """One entry: BACKGROUND / IGNORE_INDEX for the keywords, else (id, name, colour).

    Name and colour are None where the entry does not give them.
    """
    if isinstance(spec, str) and spec in ("background", "ignore"):
        return BACKGROUND if spec == "background" else IGNORE_INDEX
    if isinstance(spec, bool) or spec is None:
        raise InputError(f"{where}: {spec!r} is not a class; give {{id, name, color}}, a name, "
                         "an id, 'background' or 'ignore'")
    if isinstance(spec, int):
        spec = {"id": spec}
    elif isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise InputError(f"{where}: {spec!r} is not a class; give {{id, name, color}}, a name, "
                         "an id, 'background' or 'ignore'")
    unknown = sorted(set(spec) - {"id", "name", "color"})
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; a class "
                         "has id, name and color")
    raw_id = spec.get("id")
    if raw_id is None:
        n = number(key)
        if n is None or not n.is_integer():
            raise InputError(f"{where}: no id; give one (id: N, 1..{MAX_CLASS_ID}) since the "
                             "value is not a whole number")
        raw_id = int(n)
    if isinstance(raw_id, bool) or not isinstance(raw_id, int):
        raise InputError(f"{where}: id {raw_id!r} is not a whole number; class ids are "
                         f"1..{MAX_CLASS_ID}")
    if raw_id == BACKGROUND:
        raise InputError(f"{where} is given id 0, which is background (pixels no label "
                         f"covers); write '{key}: background' to make it background, or "
                         f"choose an id in 1..{MAX_CLASS_ID}")
    if raw_id == IGNORE_INDEX:
        raise InputError(f"{where} is given id {IGNORE_INDEX}, which is ignore_index (nodata); "
                         f"write '{key}: ignore' to ignore it, or choose an id in "
                         f"1..{MAX_CLASS_ID}")
    if not 1 <= raw_id <= MAX_CLASS_ID:
        raise InputError(f"{where}: id {raw_id} is out of range; class ids are "
                         f"1..{MAX_CLASS_ID} (0 is background, {IGNORE_INDEX} ignore_index)")
    name = spec.get("name")
    color = None if spec.get("color") is None else _color(spec["color"], where)
    return raw_id, None if name is None else str(name), color


def _color(raw: Any, where: str) -> str:
    if isinstance(raw, str) and _HEX.match(raw):
        return raw.lower()
    if isinstance(raw, (list, tuple)) and len(raw) in (3, 4) and all(
            isinstance(c, int) and 0 <= c <= 255 for c in raw):
        return "#{:02x}{:02x}{:02x}".format(*raw[:3])
    raise InputError(f"{where}: color {raw!r} is not a colour; write \"#rrggbb\" or "
                     "[r, g, b] (0..255)")
