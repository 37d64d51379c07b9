"""Options, each defined once: a field of a frozen dataclass with its help, choices and range.

A command's options are a dataclass in ``geovision/options/<command>.py`` whose fields carry
their default and an :class:`Spec` (help, choices, range, how they are spelled on the command
line). From that one definition:

* the command line builds its click options (:mod:`geovision.cli.options`);
* job files convert and check their steps' options, accepting what the command line accepts
  plus the YAML list form (:func:`convert_fields`);
* the library checks a value it is given (:func:`check_fields`), with the same messages.

Library functions take the dataclass itself (``tile(..., TileOptions(...))``) and pass it on
to the work they create, never copies of its fields. Nothing here imports torch or click, so
a command line or job file is checked in milliseconds, before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from geovision.errors import InputError

_SPEC = "geovision"


@dataclass(frozen=True)
class Spec:
    """How an option is offered and checked.

    Attributes:
        help: one line for ``--help``.
        flag: its command-line spelling (default: ``--`` and the field name with dashes).
        choices: the values it takes, when it is one of a few names.
        noun: what a choice is, for messages ("'cosine' is not a blend").
        min: smallest value (of each item, for lists).
        max: largest value.
        min_open: ``min`` itself is excluded.
        max_open: ``max`` itself is excluded.
        hint: added to an out-of-range message, e.g. what the value means.
        show_default: what ``--help`` shows as the default when it is not the plain value.
        metavar: the value's placeholder in ``--help``.
        rule: a further check: the problem with a (converted) value, or None.
        multiple: a list given on the command line by repeating the option (else commas).
        cli: offered on the command line (False: job files and Python only).
        fingerprint: changes the result (False: does not make resumed work incompatible).
    """

    help: str
    flag: str = ""
    choices: tuple[str, ...] = ()
    noun: str = "choice"
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    hint: str = ""
    show_default: str | None = None
    metavar: str | None = None
    rule: Callable[[Any], str | None] | None = None
    multiple: bool = False
    cli: bool = True
    fingerprint: bool = True


def option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field holding an option: its default and its :class:`Spec`."""
    return dataclasses.field(default=default, metadata={_SPEC: Spec(help=help, **spec)})


def reuse(cls: type, name: str, **changes: Any) -> Any:
    """The field of option ``name`` of ``cls``, for another command's options.

    The option stays defined once: its default, help, choices and range come from ``cls``;
    ``changes`` replace parts of its :class:`Spec`, typically ``flag`` when the other command
    spells it differently (``--vector-format`` for ``format``), so that its messages name the
    flag the user typed.
    """
    found = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if found is None or _SPEC not in found.metadata:
        raise TypeError(f"{cls.__name__} has no option {name!r}")
    spec = dataclasses.replace(found.metadata[_SPEC], **changes)
    return dataclasses.field(default=found.default, metadata={_SPEC: spec})


@dataclass(frozen=True)
class Kind:
    """The Python type of an option's value, read from its annotation.

    Attributes:
        base: ``bool``, ``int``, ``float`` or ``str`` (of the value, or of each item).
        optional: None is a value.
        items: a tuple of ``base`` values (None: a single value).
        length: the tuple's fixed length (None: any).
    """

    base: type
    optional: bool = False
    items: bool = False
    length: int | None = None


@dataclass(frozen=True)
class OptionField:
    """One option of an options dataclass."""

    name: str
    default: Any
    spec: Spec
    kind: Kind

    @property
    def flag(self) -> str:
        """Its command-line spelling, e.g. ``--tile-size``."""
        return self.spec.flag or "--" + self.name.replace("_", "-")


def _kind(annotation: Any) -> Kind:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = _kind(next(a for a in args if a is not type(None)))
        return dataclasses.replace(inner, optional=True)
    if origin is tuple:
        fixed = None if len(args) == 2 and args[1] is Ellipsis else len(args)
        return Kind(base=args[0], items=True, length=fixed)
    if annotation in (bool, int, float, str):
        return Kind(base=annotation)
    raise TypeError(f"option type {annotation!r} is not supported")


def flag_of(cls: type, name: str) -> str:
    """The command-line spelling of option ``name`` of ``cls`` (``--vector-classes``)."""
    return next(opt.flag for opt in fields_of(cls) if opt.name == name)


def fields_of(cls: type) -> list[OptionField]:
    """The options of an options dataclass: its own in order, then those it inherits.

    (``TileOptions`` lists ``--task`` first and the scene options it shares with
    ``InferOptions``, from :class:`~geovision.options.scenes.SceneOptions`, after its own.)
    """
    hints = typing.get_type_hints(cls)
    own = set(inspect.get_annotations(cls))
    fields = [f for f in dataclasses.fields(cls) if _SPEC in f.metadata]
    ordered = [f for f in fields if f.name in own] + [f for f in fields if f.name not in own]
    return [OptionField(f.name, f.default, f.metadata[_SPEC], _kind(hints[f.name]))
            for f in ordered]


_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _scalar(kind: Kind, value: Any) -> Any:
    """``value`` as a ``kind.base`` (text as the command line gives it, or a YAML value)."""
    base = kind.base
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
            return value.strip().lower() in _TRUE
        raise ValueError
    if isinstance(value, bool):
        raise ValueError
    if base is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError
    if base is float:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
        raise ValueError
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError


def _expected(kind: Kind) -> str:
    if not kind.items:
        return _WORDS[kind.base]
    noun = {int: "integers", float: "numbers"}.get(kind.base, "values")
    count = f"{kind.length} " if kind.length else "a list of "
    return f"{count}comma-separated {noun}"


def convert(opt: OptionField, value: Any) -> Any:
    """An option's value from the command line's text or a job file's YAML value.

    Lists are given as comma-separated text (``0.8,0.1,0.1``) or as a YAML list; a single value
    is a list of one.

    Raises:
        InputError: the value is not of the option's type (the message names the option).
    """
    kind = opt.kind
    if value is None:
        if kind.optional:
            return None
        raise InputError(f"{opt.flag}: needs a value ({_expected(kind)})")
    try:
        if kind.items:
            if isinstance(value, str):
                parts: list[Any] = [p.strip() for p in value.split(",") if p.strip()]
            elif isinstance(value, (list, tuple)):
                parts = list(value)
            else:
                parts = [value]
            items = tuple(_scalar(kind, p) for p in parts)
            if kind.length is not None and len(items) != kind.length:
                raise ValueError
            return items
        return _scalar(kind, value)
    except ValueError:
        shown = value if isinstance(value, str) else ",".join(map(str, value)) if isinstance(
            value, (list, tuple)) else value
        raise InputError(f"{opt.flag}: '{shown}' is not {_expected(kind)}") from None


def _number(v: float) -> str:
    return f"{v:g}"


def _range_problem(spec: Spec, v: float) -> str | None:
    if spec.min is None and spec.max is None:
        return None
    low_bad = spec.min is not None and (v < spec.min or (spec.min_open and v == spec.min))
    high_bad = spec.max is not None and (v > spec.max or (spec.max_open and v == spec.max))
    if not (low_bad or high_bad) and not (isinstance(v, float) and math.isnan(v)):
        return None
    hint = f" ({spec.hint})" if spec.hint else ""
    if spec.min is not None and spec.max is not None:
        interval = (f"{'(' if spec.min_open else '['}{_number(spec.min)}, "
                    f"{_number(spec.max)}{')' if spec.max_open else ']'}")
        return f"{v} must lie in {interval}{hint}"
    if spec.max is None:
        word = "more than" if spec.min_open else "at least"
        return f"{v} must be {word} {_number(spec.min or 0)}{hint}"
    return f"{v} must be {'less than' if spec.max_open else 'at most'} {_number(spec.max)}{hint}"


def problem(opt: OptionField, value: Any) -> str | None:
    """What is wrong with an option's (converted) value, or None."""
    spec = opt.spec
    if value is None:
        return None
    values = value if opt.kind.items else (value,)
    for v in values:
        if spec.choices and v not in spec.choices:
            return f"'{v}' is not a {spec.noun}; choose one of {', '.join(spec.choices)}"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            found = _range_problem(spec, v)
            if found:
                return found
    return spec.rule(value) if spec.rule is not None else None


def check_fields(options: Any) -> None:
    """Check every option of an options dataclass instance.

    Raises:
        InputError: the first option out of range or not among its choices, named as on the
            command line (``--overlap: 1.5 must lie in [0, 1)``).
    """
    for opt in fields_of(type(options)):
        found = problem(opt, getattr(options, opt.name))
        if found:
            raise InputError(f"{opt.flag}: {found}")


def convert_fields(cls: type, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Convert and check the given options of ``cls`` (a job step's, say); unknown keys stay.

    Returns:
        The values with the options converted, and the problems found (one message each,
        naming the option as the command line spells it).
    """
    out = dict(values)
    problems = []
    for opt in fields_of(cls):
        if opt.name not in values:
            continue
        try:
            value = convert(opt, values[opt.name])
        except InputError as exc:
            problems.append(str(exc))
            continue
        found = problem(opt, value)
        if found:
            problems.append(f"{opt.flag}: {found}")
        out[opt.name] = value
    return out, problems


def fingerprint_fields(options: Any) -> dict[str, Any]:
    """The options that change a result, as plain values (for resume fingerprints)."""
    return {opt.name: _plain(getattr(options, opt.name)) for opt in fields_of(type(options))
            if opt.spec.fingerprint}


def to_json(options: Any) -> dict[str, Any]:
    """Every option as a plain JSON value (tuples become lists)."""
    return {f.name: _plain(getattr(options, f.name)) for f in dataclasses.fields(options)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def with_values(options: Any, values: Mapping[str, Any], *, what: str) -> Any:
    """A copy of ``options`` with some fields replaced (``infer(..., overlap=0.5)``).

    Raises:
        InputError: a name is not one of its options.
    """
    names = {f.name for f in dataclasses.fields(options)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(f"{what}: unknown option(s) {', '.join(unknown)}")
    return dataclasses.replace(options, **values)
