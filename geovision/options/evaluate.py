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
        preview_bands: the dataset's 1-based bands drawn as red, green, blue in previews.png
            (None: the bands named red/green/blue or B04/B03/B02, ..., else 1, 2, 3).
        curve_samples: pixels (segmentation) or tiles (classification) sampled uniformly
            for the PR, ROC and reliability curves (0: no curves).
    """

    split: str = option("test", "Tiles to evaluate on.", choices=SPLITS, noun="split")
    batch_size: int = option(16, "Tiles per batch.", min=1)
    workers: int = option(0, "DataLoader worker processes.", min=0)
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.", rule=device_problem)
    previews: int = option(8, "Tiles drawn in previews.png (0: none).", min=0)
    preview_bands: tuple[int, int, int] | None = option(
        None, "The dataset's 1-based bands drawn as red, green, blue in previews.png, e.g. "
              "4,3,2.", min=1, metavar="R,G,B",
        show_default="bands named red/green/blue or B04/B03/B02, else 1,2,3")
    curve_samples: int = option(
        200_000, "Pixels (or tiles) sampled uniformly for the PR, ROC and reliability curves "
        "(0: no curves; detection curves use every box).", min=0)

    def check(self) -> None:
        """Raise :class:`~geovision.errors.InputError` naming the option that is wrong."""
        check_fields(self)
