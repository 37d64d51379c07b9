"""The options of whole-scene scoring: one frozen value, its CLI help in field metadata.

Each field of :class:`ScoreOptions` carries, in ``metadata``, what a command line needs to
offer it: ``help``, and where they apply ``choices``, ``metavar`` and ``min``. The flag is the
field name with dashes (``class_field`` -> ``--class-field``, see :func:`flag`), so that a
command can be generated from :func:`option_specs` and every error names the flag the user
typed. This module imports neither torch nor click.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any

from geovision.errors import InputError

#: What pixels that no label feature covers are: the ``background`` class, or not scored.
UNLABELED_CHOICES = ("background", "ignore")
#: IoU at which a detection matches an object for precision, recall and F1.
MATCH_IOU = 0.5
#: Confidence level of every interval.
CONFIDENCE = 0.95
#: Two-sided standard normal quantile of :data:`CONFIDENCE` (the 1.96 of Olofsson et al.).
Z95 = 1.959963984540054


def _option(default: Any, help: str, *, choices: tuple[str, ...] | None = None,
            metavar: str | None = None, min: int | None = None) -> Any:
    meta = {"help": help, "choices": choices, "metavar": metavar, "min": min}
    return field(default=default, metadata={k: v for k, v in meta.items() if v is not None})


@dataclass(frozen=True)
class ScoreOptions:
    """How to score a map (class raster or detections) against reference labels.

    Attributes:
        class_field: field of vector labels whose values name the classes.
        layer: layer of a multi-layer vector file of labels.
        class_map: class-map file (the format of ``geovision.geo.classmap``).
        aoi: polygons (any OGR format, any CRS) outside which nothing is scored.
        unlabeled: what pixels no vector label covers are (``background`` or ``ignore``).
        scene: raster whose footprint bounds detection scoring.
        block_size: side in pixels of the windows read at a time.
        bootstrap_block: side in pixels of the blocks resampled by the bootstrap.
        replicates: bootstrap replicates.
        seed: seed of the bootstrap.
        overwrite: replace the outputs of an earlier score in the output folder.
    """

    class_field: str | None = _option(
        None, "Field of vector LABELS whose values name the classes (matched by name with the "
        "predictions' classes). Without it, every feature is of the predictions' one class "
        "besides background.", metavar="FIELD")
    layer: str | None = _option(
        None, "Layer of a multi-layer vector file of LABELS (default: the first).",
        metavar="NAME")
    class_map: str | None = _option(
        None, "Class-map file, as for tile --class-map (YAML or JSON): the values of a class "
        "raster of PREDICTIONS are the class ids it names; raster LABELS are mapped to classes "
        "by it. Needed for a class raster without class names in its metadata.",
        metavar="FILE")
    aoi: str | None = _option(
        None, "Area of interest: polygons (any OGR format, any CRS); only pixels whose centre "
        "is inside, and objects whose box centre is inside, are scored.", metavar="FILE")
    unlabeled: str = _option(
        "background", "Pixels that no vector label covers: the 'background' class, or "
        "'ignore' (not scored; for partly labelled scenes).", choices=UNLABELED_CHOICES)
    scene: str | None = _option(
        None, "Detections: the raster they were predicted on; only objects whose box centre "
        "lies in its footprint are scored (default: the scene named in the <stem>.json "
        "summary beside the detections, when there is one).", metavar="RASTER")
    block_size: int = _option(
        1024, "Side in pixels of the windows read at a time (memory is about 40 bytes per "
        "pixel of a window).", min=16)
    bootstrap_block: int = _option(
        256, "Side in pixels of the square blocks of the scene that the bootstrap resamples "
        "for the confidence intervals; choose it larger than the range over which errors "
        "are correlated.", min=1)
    replicates: int = _option(
        1000, "Bootstrap replicates for the confidence intervals (0: no intervals).", min=0)
    seed: int = _option(0, "Seed of the bootstrap (same seed, same intervals).", min=0)
    overwrite: bool = _option(
        False, "Replace score.json, report.md and the figures of an earlier score in the "
        "output folder (other files there are never touched).")

    def check(self) -> ScoreOptions:
        """Check every value; return the options themselves.

        Raises:
            InputError: a value is out of range or not one of its choices, naming its flag.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices is not None and value not in choices:
                raise InputError(f"{flag(f.name)}: '{value}' is not one of "
                                 f"{', '.join(choices)}")
            low = f.metadata.get("min")
            if low is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InputError(f"{flag(f.name)}: expected a whole number, got {value!r}")
            if low is not None and value < low:
                raise InputError(f"{flag(f.name)}: must be at least {low}, got {value}")
        return self

    def to_json(self) -> dict[str, Any]:
        """The options as plain values (recorded in score.json)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "options") -> ScoreOptions:
        """Options from plain values (a job step's parameters), checked.

        Args:
            values: ``{field name: value}``; dashes in names are read as underscores.
            source: where the values come from, for messages.

        Raises:
            InputError: an unknown name (with the closest known one) or a bad value.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        clean = {str(k).replace("-", "_"): v for k, v in values.items()}
        unknown = [k for k in clean if k not in names]
        if unknown:
            near = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise InputError(f"{source}: unknown score option '{unknown[0]}'{hint}; options "
                             f"are: {', '.join(names)}")
        return cls(**clean).check()


def flag(name: str) -> str:
    """The command-line flag of an option field: ``class_field`` -> ``--class-field``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class OptionSpec:
    """What a command line needs to offer one field of :class:`ScoreOptions`.

    Attributes:
        name: the field name (the keyword of :class:`ScoreOptions`).
        flag: its flag, ``--`` and the name with dashes.
        type: ``str``, ``int`` or ``bool`` (``str | None`` fields are optional strings).
        default: the default value.
        help: the help text.
        choices: the allowed values, or None.
        metavar: the placeholder shown in help, or None.
        min: the smallest allowed whole number, or None.
    """

    name: str
    flag: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None
    metavar: str | None
    min: int | None


def option_specs() -> list[OptionSpec]:
    """The fields of :class:`ScoreOptions` in order, described for a command line."""
    hints = typing.get_type_hints(ScoreOptions)
    out = []
    for f in dataclasses.fields(ScoreOptions):
        hint = hints[f.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        out.append(OptionSpec(
            name=f.name, flag=flag(f.name), type=base, default=f.default,
            help=f.metadata["help"], choices=f.metadata.get("choices"),
            metavar=f.metadata.get("metavar"), min=f.metadata.get("min")))
    return out
