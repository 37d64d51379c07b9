"""``score()``: how good a map is against reference labels, written to a folder."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geovision.errors import InputFileError
from geovision.evaluation.report import (
    CONFUSION_PNG,
    REPORT_MD,
    SCORE_JSON,
    claim_outputs,
    header,
    markdown_class_raster,
    markdown_detections,
    plain,
    write_json,
    write_text_atomic,
)
from geovision.options import to_json, with_values
from geovision.options.score import ScoreOptions

log = logging.getLogger(__name__)

#: Suffixes taken as detections (vector files) rather than a class raster.
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb", ".parquet", ".kml", ".gml")
#: Files a score writes, by kind (score.json last: it marks a complete score).
OUTPUTS = {"class_raster": (CONFUSION_PNG, REPORT_MD, SCORE_JSON),
           "detections": ("pr_curve.png", "curves.json", REPORT_MD, SCORE_JSON)}


@dataclass(frozen=True)
class ScoreResult:
    """What :func:`score` wrote and found.

    Attributes:
        kind: ``class_raster`` or ``detections``.
        out_dir: the output folder.
        outputs: ``{file name: path}`` of every file written.
        document: the content of score.json.
    """

    kind: str
    out_dir: Path
    outputs: dict[str, Path]
    document: dict[str, Any] = field(repr=False)

    def summary(self) -> str:
        """One line with the headline figures."""
        d = self.document
        name = Path(d["predictions"]["path"]).name
        if self.kind == "class_raster":
            ci = d["area_adjusted"]["overall_accuracy"]["ci95"]
            few = "warning" in d["area_adjusted"]["bootstrap"]
            ci_text = (f" (95% CI {_f(ci[0])}-{_f(ci[1])}{', few blocks' if few else ''})"
                       if ci and ci[0] is not None else "")
            return (f"{name}: overall accuracy {_f(d['overall_accuracy'])}{ci_text}, "
                    f"kappa {_f(d['kappa'])}, mIoU {_f(d['miou'])} "
                    f"(baseline {_f(d['baseline']['miou'])}, {_rule(d['baseline']['rule'])}); "
                    f"{d['pixels']:,} pixels")
        return (f"{name}: precision {_f(d['precision'])}, recall {_f(d['recall'])} at IoU "
                f"{d['match']['iou_threshold']}, mAP@0.5 {_f(d['map_50'])}, mAP@[.5:.95] "
                f"{_f(d['map'])}; {d['detections']} detections of {d['objects']} objects")


def is_complete(out_dir: str | os.PathLike[str]) -> bool:
    """Whether ``out_dir`` holds a finished score (its score.json, written last)."""
    return (Path(out_dir) / SCORE_JSON).is_file()


def prediction_kind(path: str) -> str:
    """``detections`` for a vector file (by suffix), else ``class_raster``.

    Raises:
        InputFileError: a local file that does not exist.
    """
    local = "://" not in path and not path.startswith("/vsi")
    if local and not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    return "detections" if path.lower().endswith(VECTOR_SUFFIXES) else "class_raster"


def score(predictions: str | os.PathLike[str], labels: str | os.PathLike[str],
          out_dir: str | os.PathLike[str], options: ScoreOptions | None = None, *,
          overwrite: bool = False, quiet: bool = True, **kwargs: Any) -> ScoreResult:
    """Score a map against reference labels; write score.json, report.md and figures.

    PREDICTIONS is a class raster (``<stem>.class.tif`` of ``geovision infer``, or any
    whole-number raster with ``options.class_map``) or a detections vector file
    (``<stem>.detections.geojson``). LABELS is a vector file (any OGR format) or, for a class
    raster, a raster class map. Classes are matched by name; see :mod:`geovision.evaluation`.

    Args:
        predictions: the map.
        labels: the reference.
        out_dir: the output folder (created; only the score's own files are written there).
        options: how to score (defaults: :class:`ScoreOptions`).
        overwrite: replace score.json, report.md and the figures of an earlier score in
            ``out_dir`` (other files there are never touched).
        quiet: hide the progress bar.
        **kwargs: fields of the options, as keywords (``class_field="kind"``).

    Returns:
        The files written and the content of score.json.

    Raises:
        InputError: an option or input does not fit (the message names it).
        InputFileError: an input is missing or unreadable.
        OutputExistsError: the folder holds an earlier score and ``overwrite`` is not set.
    """
    opts = with_values(options or ScoreOptions(), kwargs, what="score()")
    opts.check()
    pred, lab, out = str(predictions), str(labels), Path(out_dir)
    kind = prediction_kind(pred)
    if "://" not in lab and not lab.startswith("/vsi") and not os.path.exists(lab):
        raise InputFileError(f"{lab}: file not found")
    names = OUTPUTS[kind]
    claim_outputs(out, names, overwrite)
    if kind == "class_raster":
        from geovision.evaluation.classraster import score_class_raster
        from geovision.evaluation.plots import plot_confusion

        body = score_class_raster(pred, lab, opts, quiet=quiet)
        doc = {"geovision": header(), "options": to_json(opts), **body}
        plot_confusion(body["confusion_matrix"]["pixels"],
                       [c["name"] for c in body["classes"]], out / CONFUSION_PNG,
                       title=f"{Path(pred).name}: {body['pixels']:,} pixels")
        write_text_atomic(out / REPORT_MD, markdown_class_raster(_plain(doc)))
    else:
        from geovision.evaluation.detection import score_detections

        body = score_detections(pred, lab, opts, out)
        doc = {"geovision": header(), "options": to_json(opts), **body}
        write_text_atomic(out / REPORT_MD, markdown_detections(_plain(doc)))
    write_json(out / SCORE_JSON, doc)
    result = ScoreResult(kind=kind, out_dir=out, outputs={n: out / n for n in names},
                         document=_plain(doc))
    log.debug("%s", result.summary())
    return result


def _plain(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = plain(doc)
    return out


def _rule(rule: str | None) -> str:
    """A baseline's rule without its explanation: ``every pixel 'water'``."""
    return (rule or "no pixel").split(" (")[0]


def _f(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"
