"""The options of ``geovision export``."""

from __future__ import annotations

from dataclasses import dataclass

from geovision.options import check_fields, option

#: Formats of exported models.
FORMATS = ("torchscript", "onnx")


@dataclass(frozen=True)
class ExportOptions:
    """How a model bundle is exported (the options of ``geovision export``).

    Attributes:
        format: ``torchscript`` (every task) or ``onnx`` (segmentation, classification).
    """

    format: str = option("torchscript", "torchscript (every task) or onnx (segmentation, "
                                        "classification; needs pip install onnx onnxscript).",
                         choices=FORMATS, noun="format")

    def check(self) -> None:
        """Raise :class:`~geovision.errors.InputError` naming the option that is wrong."""
        check_fields(self)
