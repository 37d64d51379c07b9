"""The output folder of ``geovision infer``, and when a scene's outputs there are complete.

Per scene ``<stem>`` (the scene's name: a file's stem, a STAC item's id, a stack's folder;
:attr:`geovision.geo.scenes.SceneSource.name`): the task's outputs
(:meth:`~geovision.inference.tasks.InferenceTask.output_names`), the run summary
``<stem>.json``, written last, and while the scene is in progress its scratch directory
``.<stem>.partial/`` (laid out by :mod:`geovision.inference.work`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geovision.errors import GeovisionError

if TYPE_CHECKING:
    from geovision.options.scenes import SceneOptions

#: Format of a run summary.
FORMAT = {"format": "inference", "version": 1}


@dataclass(frozen=True)
class PredictionFolder:
    """Paths of an inference output folder."""

    root: Path

    def summary(self, stem: str) -> Path:
        """The run summary of scene ``stem``, written once its outputs are."""
        return self.root / f"{stem}.json"

    def scratch(self, stem: str) -> Path:
        """Work in progress of scene ``stem`` (removed when the scene is complete)."""
        return self.root / f".{stem}.partial"

    def scene_complete(self, stem: str) -> bool:
        """Scene ``stem``'s outputs are written and no run of it is in progress."""
        return self.summary(stem).exists() and not self.scratch(stem).exists()

    def is_complete(self, scenes: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                    options: SceneOptions | None = None) -> bool:
        """Every scene's outputs are complete.

        Args:
            scenes: what ``infer`` was given (files, globs, folders, STAC items, URLs).
            options: its scene options (``--stack``, ``--stack-folders``, ...).
        """
        from geovision.geo.scenes import scenes_for
        from geovision.options.scenes import SceneOptions

        given = [scenes] if isinstance(scenes, (str, os.PathLike)) else list(scenes)
        try:
            names = [s.name for s in scenes_for(given, options or SceneOptions())]
        except GeovisionError:
            return False
        return all(self.scene_complete(s) for s in names)


@dataclass(frozen=True)
class SceneSummary:
    """The run summary of one scene: ``<stem>.json``, and what :func:`infer` returns.

    Attributes:
        created: when the outputs were written (ISO 8601, UTC).
        geovision_version: the version that wrote them.
        model: the model's path, task, architecture, classes, tile size and bands.
        scene: the scene's description (path, CRS, transform, size, dtype, nodata, ...).
        parameters: the inference options, with the window, stride and device used.
        windows: windows run.
        blocks: blocks they were grouped into.
        outputs: file names of the outputs, in the output folder.
        counts: what the outputs hold (``detections``, ``cells``; ``polygons``: the
            ``--vectors`` record, features per class, seconds, layer).
        timings: seconds per stage (they overlap in time) and ``total``.
        megapixels: the scene's size.
        megapixels_per_s: its size over the total time.
        preview: the quicklook written with ``preview``, or None (not in the file).
    """

    created: str
    geovision_version: str
    model: dict[str, Any]
    scene: dict[str, Any]
    parameters: dict[str, Any]
    windows: int
    blocks: int
    outputs: tuple[str, ...]
    counts: dict[str, Any]
    timings: dict[str, float]
    megapixels: float
    megapixels_per_s: float
    preview: str | None = None

    @property
    def scene_path(self) -> str:
        """The scene as it was given (a file's GDAL path, a STAC item, a stack's files)."""
        return str(self.scene["path"])

    @property
    def scene_source(self) -> str:
        """What GDAL opens to read the scene as it was predicted (a path, or VRT XML)."""
        return str(self.scene.get("vrt") or self.scene["path"])

    @property
    def stem(self) -> str:
        """The scene's name, which names its outputs."""
        return str(self.scene.get("name") or Path(self.scene_path).stem)

    def to_json(self) -> dict[str, Any]:
        """The summary as ``<stem>.json`` holds it (format ``inference`` version 1)."""
        doc: dict[str, Any] = {
            "geovision": {**FORMAT, "created": self.created,
                          "geovision_version": self.geovision_version},
            "model": self.model, "scene": self.scene, "parameters": self.parameters,
            "windows": self.windows, "blocks": self.blocks, "outputs": list(self.outputs),
            "counts": self.counts, "timings": self.timings, "megapixels": self.megapixels,
            "megapixels_per_s": self.megapixels_per_s,
        }
        if self.preview is not None:
            doc["preview"] = self.preview
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SceneSummary:
        """A summary read back from ``<stem>.json``."""
        gv = doc.get("geovision") or {}
        return cls(
            created=str(gv.get("created", "")), geovision_version=str(
                gv.get("geovision_version", "")),
            model=doc["model"], scene=doc["scene"], parameters=doc["parameters"],
            windows=int(doc["windows"]), blocks=int(doc["blocks"]),
            outputs=tuple(doc["outputs"]), counts=dict(doc.get("counts") or {}),
            timings=dict(doc.get("timings") or {}), megapixels=float(doc["megapixels"]),
            megapixels_per_s=float(doc["megapixels_per_s"]), preview=doc.get("preview"))

    def report_line(self, out: Path) -> str:
        """One line for the command line: the scene, its speed and the files written.

        The model's share of the wall time says whether the model (near 100%) or the
        pipeline around it is the bottleneck.
        """
        files = [*(str(out / n) for n in (*self.outputs, f"{self.stem}.json")),
                 *([self.preview] if self.preview else [])]
        share = self.timings.get("model_share")
        model = f" ({share:.0%} of the time in the model)" if share is not None else ""
        return (f"{self.scene_path}: {self.windows} windows, "
                f"{self.megapixels_per_s:.2f} MP/s{model} -> {', '.join(files)}")
