"""The tasks geovision learns, in one registry that every stage looks its task up in.

A task is a value, not a string compared in every module: :data:`TASKS` maps each name to a
:class:`Task` holding what is known of the task without torch (what a tile is labelled
with, what its model returns). What each stage does differently per task lives in one small
object per stage, in a module named after the task:

    geovision/tiling/tasks/<name>.py      how a tile is labelled (mask, label or boxes)
    geovision/data/tasks/<name>.py        what a sample holds and how samples are collated
    geovision/engine/tasks/<name>.py      targets on the device, loss, metrics, preview plots
    geovision/inference/tasks/<name>.py   accumulating windows, finishing, writing outputs

Each stage finds its object with ``for_task(name)`` (in ``geovision/<stage>/tasks/``). Adding a
task is one line in :data:`TASKS` plus one file per stage (and its architectures in
:mod:`geovision.models.registry`). This module imports nothing heavy.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from geovision.errors import InputError


@dataclass(frozen=True)
class Task:
    """What a task is, independently of any stage.

    Attributes:
        name: the task's name in files and on the command line.
        target: what a tile is labelled with, the tile store array that holds it:
            ``mask`` (a class per pixel), ``label`` (a class per tile) or ``boxes``.
        summary: one line for help texts.
        logits: its model maps a batch of images to class logits (else, torchvision style, a
            list of images to a list of detections).
        model_output: what its exported model returns.
    """

    name: str
    target: str
    summary: str
    logits: bool
    model_output: str

    def stage(self, stage: str) -> Any:
        """The task's object of a stage (``tiling``, ``data``, ``engine``, ``inference``)."""
        module = importlib.import_module(f"geovision.{stage}.tasks.{self.name}")
        return module.TASK


#: Every task, by name; the order is the order of choices on the command line.
TASKS: dict[str, Task] = {t.name: t for t in (
    Task("segmentation", "mask", "a class per pixel (mask per tile)", True,
         "probabilities float32 (N, classes, H, W)"),
    Task("classification", "label", "one class per tile (the class covering most of it)", True,
         "probabilities float32 (N, classes)"),
    Task("detection", "boxes", "boxes of objects", False,
         "list of {boxes float32 (M, 4) xyxy in input pixels, scores (M,), labels int64 (M,)} "
         "per image"),
)}
#: Task names, in order.
TASK_NAMES = tuple(TASKS)


def get_task(name: str, *, what: str = "task") -> Task:
    """The task called ``name``.

    Raises:
        InputError: no such task (the message lists them and suggests the closest).
    """
    task = TASKS.get(name)
    if task is None:
        close = difflib.get_close_matches(str(name), TASK_NAMES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InputError(f"unknown {what} '{name}'{hint}; tasks are: {', '.join(TASK_NAMES)}")
    return task
