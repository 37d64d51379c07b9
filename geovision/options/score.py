"""The options of ``geovision score`` (and of ``score`` steps in job files).

Whole-scene scoring of a map against reference labels (:func:`geovision.evaluation.score`).
The command line, job files and ``ScoreOptions.check()`` are built from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from geovision.options import check_fields, option

#: What pixels that no label feature covers are: the ``background`` class, or not scored.
UNLABELED_CHOICES = ("background", "ignore")
#: Options that name input files (job files resolve them against the workdir).
FILE_OPTIONS = ("class_map", "aoi", "scene")


@dataclass(frozen=True)
class ScoreOptions:
    """How a map (class raster or detections) is scored against reference labels.

    Attributes:
        class_field: field of vector labels whose values name the classes.
        layer: layer of a multi-layer vector file of labels.
        class_map: class-map file (the format of ``geovision.geo.classmap``).
        aoi: polygons (any OGR format, any CRS) outside which nothing is scored.
        unlabeled: what pixels no vector label covers are (``background`` or ``ignore``).
        scene: raster whose footprint bounds detection scoring.
        block_size: side in pixels of the windows read at a time (does not change results).
        bootstrap_block: side in pixels of the blocks resampled by the bootstrap.
        replicates: bootstrap replicates (0: no intervals).
        seed: seed of the bootstrap.
    """

    class_field: str | None = option(
        None, "Field of vector LABELS whose values name the classes (matched by name with the "
              "predictions' classes) [default: every feature is the predictions' one class "
              "besides background].", metavar="FIELD")
    layer: str | None = option(
        None, "Layer of a multi-layer vector file of LABELS [default: the first].",
        metavar="NAME")
    class_map: str | None = option(
        None, "Class-map file, as for tile --class-map (YAML or JSON): the values of a class "
              "raster of PREDICTIONS are the class ids it names; raster LABELS, and the "
              "values of --class-field when the map lists them, are mapped to classes by it. "
              "Needed for a class raster without class names in its metadata [default: the "
              "class names in the rasters' metadata].",
        metavar="FILE")
    aoi: str | None = option(
        None, "Area of interest: polygons (any OGR format, any CRS); only pixels whose centre "
              "is inside, and objects whose box centre is inside, are scored [default: the "
              "whole scene].", metavar="FILE")
    unlabeled: str = option(
        "background", "Pixels that no vector label covers: the 'background' class, or "
                      "'ignore' (not scored; for partly labelled scenes).",
        choices=UNLABELED_CHOICES, noun="choice for unlabeled pixels")
    scene: str | None = option(
        None, "Detections: the raster they were predicted on; only objects whose box centre "
              "lies in its footprint are scored [default: the scene named in the <stem>.json "
              "summary beside the detections, when there is one].", metavar="RASTER")
    block_size: int = option(
        1024, "Side in pixels of the windows read at a time (memory is about 40 bytes per "
              "pixel of a window).", min=16, hint="pixels", fingerprint=False)
    bootstrap_block: int = option(
        256, "Side in pixels of the square blocks of the scene that the bootstrap resamples "
             "for the confidence intervals; choose it larger than the range over which errors "
             "are correlated.", min=1, hint="pixels")
    replicates: int = option(
        1000, "Bootstrap replicates for the confidence intervals (0: no intervals).", min=0)
    seed: int = option(0, "Seed of the bootstrap (same seed, same intervals).", min=0)

    def check(self) -> None:
        """Raise :class:`~geovision.errors.InputError` naming the option that is wrong."""
        check_fields(self)
