"""The files of a score: ``score.json``, ``report.md`` and the figures, written atomically.

``score.json`` (format ``score``, version 1)::

    geovision       {format: score, version: 1, created, geovision_version}
    kind            class_raster | detections
    options         the ScoreOptions used
    predictions     {path, crs, epsg, ...; names_from: metadata | class_map | ...}
    labels          {form: vector | raster, path, ...}
    aoi             path or null
    classes         [{index, name, prediction_value, label_value, in_predictions, in_labels}]
    only_in_predictions, only_in_labels     class names found on one side only

  class rasters add::

    area            {unit: m2 | crs_unit2, method: planar | ellipsoidal, ...}
    excluded        {outside_aoi, prediction_nodata, prediction_unnamed, no_reference}: pixels
                    not scored, each counted under the first reason that applies
    unnamed_values  {predictions: {value: pixels}, labels: {value: pixels}}
    pixels          pixels scored
    confusion_matrix {rows: reference, columns: predicted, pixels: [[..]], area: [[..]]}
    overall_accuracy, kappa, miou, macro_f1
    per_class       {name: {iou, f1, users_accuracy, producers_accuracy, reference_pixels,
                     predicted_pixels}}
    baseline        {rule, overall_accuracy, miou}: every pixel the commonest reference class
    area_adjusted   {method, bootstrap: {block_pixels, blocks, replicates, seed, ...},
                     total_area, overall_accuracy: EST,
                     per_class: {name: {mapped_area, mapped_proportion, area_proportion: EST,
                                        area: EST, users_accuracy: EST,
                                        producers_accuracy: EST}}}
                    where EST = {estimate, se, ci95: [low, high]} (se, ci95 null without
                    bootstrap)

  detections add::

    match           {crs, iou_threshold, rule, extent}
    objects, detections     counts scored
    precision, recall, f1, map_50, map
    per_class       {name: {objects, detections, tp, fp, fn, precision, recall, f1, ap_50,
                     ap}}
    baseline        {rule: no detection, map_50: 0}

Numbers that are undefined (e.g. the precision of a class never predicted) are null.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from geovision import __version__
from geovision.errors import OutputExistsError

#: File that marks a complete score (written last).
SCORE_JSON = "score.json"
REPORT_MD = "report.md"
CONFUSION_PNG = "confusion_matrix.png"


def plain(value: Any) -> Any:
    """A JSON-ready copy: numpy values to Python ones, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def header() -> dict[str, Any]:
    """The ``geovision`` record of score.json."""
    return {"format": "score", "version": 1,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "geovision_version": __version__}


def write_text_atomic(path: Path, text: str) -> Path:
    """Write a text file under a temporary name, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def claim_outputs(out_dir: Path, names: Iterable[str], overwrite: bool) -> None:
    """Create the output folder; refuse when an output of an earlier score is in it.

    Only the named files are ever replaced; anything else in the folder is left alone.

    Raises:
        OutputExistsError: one of ``names`` exists and ``overwrite`` is False.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a folder; give another -o")
    found = [n for n in names if (out_dir / n).exists()]
    if found and not overwrite:
        raise OutputExistsError(f"{out_dir}: holds {', '.join(found)} of an earlier score; "
                                "use --overwrite to replace them or -o for another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    # score.json marks a complete score: drop it first, so a run that stops half-way never
    # leaves the old one beside new figures.
    (out_dir / SCORE_JSON).unlink(missing_ok=True)


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    """Write score.json (plain values, NaN as null) atomically."""
    return write_text_atomic(path, json.dumps(plain(doc), indent=2) + "\n")


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _area(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "m2":
        return f"{value / 1e6:,.4f}" if abs(value) < 1e6 else f"{value / 1e6:,.2f}"
    return f"{value:,.1f}"


def _ci(est: dict[str, Any], unit: str | None = None) -> str:
    """``[low, high]`` of an estimate: areas (in ``unit``) like :func:`_area`, else 3 digits."""
    if est["ci95"] is None or est["ci95"][0] is None:
        return "–"
    lo, hi = est["ci95"]
    if unit is not None:
        return f"[{_area(lo, unit)}, {_area(hi, unit)}]"
    return f"[{_num(lo)}, {_num(hi)}]"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def markdown_class_raster(doc: dict[str, Any]) -> str:
    """report.md of a class raster's score: the tables a reader looks for first."""
    names = [c["name"] for c in doc["classes"]]
    unit = doc["area"]["unit"]
    area_unit = "km²" if unit == "m2" else "CRS units²"
    adj = doc["area_adjusted"]
    boot = adj["bootstrap"]
    lines = [
        f"# Score of {Path(doc['predictions']['path']).name}",
        "",
        f"- Predictions: `{doc['predictions']['path']}`",
        f"- Labels: `{doc['labels']['path']}` ({doc['labels']['form']})",
        *([f"- Area of interest: `{doc['aoi']}`"] if doc["aoi"] else []),
        f"- Pixels scored: {doc['pixels']:,}; not scored: "
        + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in doc["excluded"].items()),
        f"- Overall accuracy **{_num(doc['overall_accuracy'])}**, Cohen's kappa "
        f"{_num(doc['kappa'])}, mIoU {_num(doc['miou'])}, macro F1 {_num(doc['macro_f1'])}",
        f"- Baseline ({doc['baseline']['rule']}): overall accuracy "
        f"{_num(doc['baseline']['overall_accuracy'])}, mIoU {_num(doc['baseline']['miou'])}",
    ]
    for side, key in (("predictions", "only_in_predictions"), ("labels", "only_in_labels")):
        if doc[key]:
            lines.append(f"- Classes only in the {side} (not matched): {', '.join(doc[key])}")
    lines += ["", "## Per class", ""]
    lines += _table(
        ["class", "IoU", "F1", "user's acc. (precision)", "producer's acc. (recall)",
         "reference px", "predicted px"],
        [[n, _num(v["iou"]), _num(v["f1"]), _num(v["users_accuracy"]),
          _num(v["producers_accuracy"]), _num(v["reference_pixels"]),
          _num(v["predicted_pixels"])] for n, v in doc["per_class"].items()])
    lines += ["", "## Confusion matrix (pixels; rows reference, columns predicted)", ""]
    lines += _table(["reference \\ predicted", *names],
                    [[n, *(_num(int(x)) for x in row)]
                     for n, row in zip(names, doc["confusion_matrix"]["pixels"], strict=True)])
    oa = adj["overall_accuracy"]
    lines += [
        "", f"## Area-adjusted accuracy and class areas ({area_unit})", "",
        f"Overall accuracy {_num(oa['estimate'])}, 95% CI {_ci(oa)}. " + adj["method"],
        f"Bootstrap: {boot['replicates']} replicates of {boot['blocks']} blocks of "
        f"{boot['block_pixels']}×{boot['block_pixels']} pixels, seed {boot['seed']}. "
        f"Areas: {doc['area']['note']}.",
        *([f"**Warning:** {boot['warning']}"] if "warning" in boot else []),
        "",
    ]
    lines += _table(
        ["class", f"mapped area ({area_unit})", f"estimated area ({area_unit})", "95% CI",
         "user's acc.", "95% CI", "producer's acc.", "95% CI"],
        [[n, _area(v["mapped_area"], unit), _area(v["area"]["estimate"], unit),
          _ci(v["area"], unit),
          _num(v["users_accuracy"]["estimate"]), _ci(v["users_accuracy"]),
          _num(v["producers_accuracy"]["estimate"]), _ci(v["producers_accuracy"])]
         for n, v in adj["per_class"].items()])
    lines += ["", f"![confusion matrix]({CONFUSION_PNG})", ""]
    return "\n".join(lines)


def markdown_detections(doc: dict[str, Any]) -> str:
    """report.md of a detection score."""
    match = doc["match"]
    lines = [
        f"# Score of {Path(doc['predictions']['path']).name}",
        "",
        f"- Detections: `{doc['predictions']['path']}`",
        f"- Labels: `{doc['labels']['path']}`",
        *([f"- Area of interest: `{doc['aoi']}`"] if doc["aoi"] else []),
        f"- Matched in {match['crs_name']} at IoU ≥ {match['iou_threshold']}: "
        f"{match['rule']}",
        f"- {doc['detections']:,} detections, {doc['objects']:,} objects; precision "
        f"**{_num(doc['precision'])}**, recall **{_num(doc['recall'])}**, F1 "
        f"{_num(doc['f1'])}; mAP@0.5 **{_num(doc['map_50'])}**, mAP@[.5:.95] "
        f"{_num(doc['map'])} (baseline: {doc['baseline']['rule']}, mAP 0)",
    ]
    for side, key in (("predictions", "only_in_predictions"), ("labels", "only_in_labels")):
        if doc[key]:
            lines.append(f"- Classes only in the {side} (not matched): {', '.join(doc[key])}")
    lines += ["", "## Per class", ""]
    lines += _table(
        ["class", "objects", "detections", "TP", "FP", "FN", "precision", "recall", "F1",
         "AP@0.5", "AP@[.5:.95]"],
        [[n, _num(v["objects"]), _num(v["detections"]), _num(v["tp"]), _num(v["fp"]),
          _num(v["fn"]), _num(v["precision"]), _num(v["recall"]), _num(v["f1"]),
          _num(v["ap_50"]), _num(v["ap"])] for n, v in doc["per_class"].items()])
    lines += ["", "![precision-recall curves](pr_curve.png)", ""]
    return "\n".join(lines)
