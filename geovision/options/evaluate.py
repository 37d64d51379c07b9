"""The options of ``geovision evaluate`` (and of ``evaluate`` steps in job files)."""

from __future__ import annotations

from dataclasses import dataclass

from geovision.device import device_problem
from geovision.formats import SPLITS
from geovision.options import check_fields, option


@dataclass(frozen=True)
class EvaluateOptions:
    """How a model is evaluated on a tile dataset (the options of ``geovision evaluate``).

    Attributes:
        split: train, val or test.
        batch_size: tiles per batch.
        workers: DataLoader worker processes.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        previews: tiles drawn in previews.png (0: none).
    """

    split: str = option("test", "Tiles to evaluate on.", choices=SPLITS, noun="split")
    batch_size: int = option(16, "Tiles per batch.", min=1)
    workers: int = option(0, "DataLoader worker processes.", min=0)
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.", rule=device_problem)
    previews: int = option(8, "Tiles drawn in previews.png (0: none).", min=0)

    def check(self) -> None:
        """Raise :class:`~geovision.errors.InputError` naming the option that is wrong."""
        check_fields(self)
