"""Accuracy you can report: whole-scene scoring of maps, and the curves of an evaluation.

* :func:`score` scores a class raster or a detections file against reference labels (vector
  or raster) over a whole scene, block by block, and writes ``score.json``, ``report.md`` and
  figures; :class:`ScoreOptions` (defined in :mod:`geovision.options.score`, like every
  command's options) holds its options. ``geovision score`` is its command line.
* :mod:`geovision.evaluation.estimators`: the accuracy and area estimators (Olofsson et al.
  2014) and the block bootstrap, as small pure functions.
* :mod:`geovision.evaluation.curves`: precision-recall, ROC and reliability curves
  (torchmetrics) of class probabilities and of matched detections.

Nothing here imports torch until detections or curves are computed.

Example::

    from geovision.evaluation import ScoreOptions, score

    result = score("out/scene.class.tif", "labels.gpkg", "score/",
                   ScoreOptions(class_field="kind", aoi="aoi.gpkg"))
    print(result.summary())       # score/score.json, score/report.md, confusion_matrix.png
"""

from geovision.evaluation.api import ScoreResult, is_complete, score
from geovision.options.score import ScoreOptions

__all__ = ["ScoreOptions", "ScoreResult", "is_complete", "score"]
