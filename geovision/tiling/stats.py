"""Per-band statistics that merge exactly across tiles (count, mean, M2, min, max)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BandStats:
    """Running per-band moments over valid pixels; ``merge`` combines two (Chan et al.)."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def empty(cls, bands: int) -> BandStats:
        """Statistics of no pixel."""
        return cls(
            count=np.zeros(bands, dtype=np.int64),
            mean=np.zeros(bands),
            m2=np.zeros(bands),
            min=np.full(bands, np.inf),
            max=np.full(bands, -np.inf),
        )

    @classmethod
    def of(cls, pixels: np.ndarray, valid: np.ndarray) -> BandStats:
        """Statistics of a (bands, rows, cols) array over the pixels where ``valid`` holds.

        Integer pixels of up to 32 bits are summed exactly in float64 (one pass: sum and sum of
        squares); float pixels use two passes, which keeps M2 accurate far from zero.
        """
        bands = pixels.shape[0]
        if valid.all():
            flat = pixels.reshape(bands, -1)
        else:
            if not valid.any():
                return cls.empty(bands)
            flat = pixels[:, valid]
        n = flat.shape[1]
        values = flat.astype(np.float64)
        total = values.sum(axis=1)
        mean = total / n
        if flat.dtype.kind in "iub" and flat.dtype.itemsize <= 2:
            m2 = np.maximum(np.einsum("ij,ij->i", values, values) - total * mean, 0.0)
        else:
            centred = values - mean[:, None]
            m2 = np.einsum("ij,ij->i", centred, centred)
        return cls(
            count=np.full(bands, n, dtype=np.int64), mean=mean, m2=m2,
            min=flat.min(axis=1).astype(np.float64), max=flat.max(axis=1).astype(np.float64),
        )

    def merge(self, other: BandStats) -> BandStats:
        """The statistics of both pixel sets together."""
        n = self.count + other.count
        safe = np.where(n > 0, n, 1)
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / safe
        m2 = self.m2 + other.m2 + delta**2 * self.count * other.count / safe
        return BandStats(n, np.where(n > 0, mean, 0.0), np.where(n > 0, m2, 0.0),
                         np.minimum(self.min, other.min), np.maximum(self.max, other.max))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays, for saving."""
        return {"count": self.count, "mean": self.mean, "m2": self.m2,
                "min": self.min, "max": self.max}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> BandStats:
        """Inverse of :meth:`to_arrays`."""
        return cls(np.asarray(arrays["count"]), np.asarray(arrays["mean"]),
                   np.asarray(arrays["m2"]), np.asarray(arrays["min"]),
                   np.asarray(arrays["max"]))

    def describe(self) -> dict:
        """The ``stats`` record of the tile dataset format (population std)."""
        n = np.where(self.count > 0, self.count, 1)
        std = np.sqrt(self.m2 / n)
        return {
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in std],
            "min": [float(v) if np.isfinite(v) else None for v in self.min],
            "max": [float(v) if np.isfinite(v) else None for v in self.max],
            "pixels": int(self.count.max()) if len(self.count) else 0,
        }
