"""Gathering finished pieces into full-width strips of output rows, top to bottom.

Pieces finish in block order, a seam only once the blocks on both sides are done; an output
file is written by strips of whole tile rows (:class:`~geovision.inference.cogwriter.CogWriter`).
:class:`StripAssembler` copies each finished piece into the strips it overlaps and hands out
the strips that are complete, in order. It holds only the strips between the oldest unfinished
piece and the newest finished one: about two block rows, whatever the scene's height.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from geovision.geo.windows import PixelWindow


@dataclass(frozen=True)
class Layer:
    """One output built from the pieces: bands, dtype and the value of unfilled pixels."""

    bands: int
    dtype: str
    fill: float


class StripAssembler:
    """Full-width strips of ``rows`` rows, filled from pieces and released in order."""

    def __init__(self, height: int, width: int, rows: int, layers: Mapping[str, Layer]) -> None:
        """Plan ``ceil(height / rows)`` strips of each layer."""
        self.height, self.width, self.rows = height, width, rows
        self.layers = dict(layers)
        self._strips: dict[int, dict[str, np.ndarray]] = {}
        self._missing: dict[int, int] = {}
        self._next = 0  # first strip not yet released
        self.peak = 0  # most strips held at once

    def _strip(self, i: int) -> dict[str, np.ndarray]:
        strip = self._strips.get(i)
        if strip is None:
            n = min(self.rows, self.height - i * self.rows)
            # every pixel comes from exactly one piece: no fill pass over the strip
            strip = {name: np.empty((ly.bands, n, self.width), dtype=ly.dtype)
                     for name, ly in self.layers.items()}
            self._strips[i] = strip
            self._missing[i] = n * self.width
            self.peak = max(self.peak, len(self._strips))
        return strip

    def add(self, window: PixelWindow, arrays: Mapping[str, np.ndarray | None],
            ) -> list[tuple[int, dict[str, np.ndarray]]]:
        """Copy a finished piece's arrays (``(bands, rows, cols)`` per layer) into the strips.

        Layers missing from ``arrays`` (or None) take their fill value there.

        Returns:
            The strips now complete, in order: (first row, arrays per layer).
        """
        first, last = window.row // self.rows, (window.row + window.height - 1) // self.rows
        for i in range(first, last + 1):
            strip = self._strip(i)
            r0 = max(window.row, i * self.rows)
            r1 = min(window.row + window.height, (i + 1) * self.rows)
            for name, ly in self.layers.items():
                arr = arrays.get(name)
                strip[name][:, r0 - i * self.rows:r1 - i * self.rows,
                            window.col:window.col + window.width] = (
                    ly.fill if arr is None else arr[:, r0 - window.row:r1 - window.row])
            self._missing[i] -= (r1 - r0) * window.width
        return self._release()

    def _release(self) -> list[tuple[int, dict[str, np.ndarray]]]:
        out = []
        while self._next in self._missing and self._missing[self._next] == 0:
            i = self._next
            out.append((i * self.rows, self._strips.pop(i)))
            del self._missing[i]
            self._next += 1
        return out

    @property
    def done(self) -> bool:
        """True once every strip has been released."""
        return self._next * self.rows >= self.height

    @property
    def held(self) -> int:
        """Strips held (started, not released)."""
        return len(self._strips)
