"""Polygons of whole pixels and their sums, as ragged arrays: a compact, picklable value.

:class:`Regions` holds many polygons at once the way ``shapely.to_ragged_array`` does
(coordinates, ring offsets, polygon offsets), with per-region class, pixel count, area and
probability sum, so a block's result crosses process boundaries as a few numpy arrays and
is turned into shapely geometries only where needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine


@dataclass(frozen=True)
class Regions:
    """Polygons of whole pixels with their sums, as ragged arrays (plain and compact).

    Polygon ``k`` has rings ``geom_offsets[k]:geom_offsets[k+1]`` (exterior first), ring
    ``r`` has vertices ``coords[ring_offsets[r]:ring_offsets[r+1]]`` (closed), in scene pixel
    coordinates (x = column, y = row).

    Attributes:
        coords: ``(N, 2)`` float64 vertices.
        ring_offsets: ``(R + 1,)`` int64.
        geom_offsets: ``(P + 1,)`` int64.
        class_id: ``(P,)`` int64 class of each region.
        pixels: ``(P,)`` int64 pixels in each region.
        area: ``(P,)`` float64 m² of each region (sum of its pixels' areas).
        prob_sum: ``(P,)`` float64 sum of the class probability over the region's pixels, or
            None when no probabilities were given.
    """

    coords: np.ndarray
    ring_offsets: np.ndarray
    geom_offsets: np.ndarray
    class_id: np.ndarray
    pixels: np.ndarray
    area: np.ndarray
    prob_sum: np.ndarray | None

    def __len__(self) -> int:
        return len(self.class_id)

    @classmethod
    def empty(cls, with_prob: bool) -> Regions:
        """No regions."""
        return cls(np.zeros((0, 2)), np.zeros(1, np.int64), np.zeros(1, np.int64),
                   np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                   np.zeros(0) if with_prob else None)

    def take(self, index: np.ndarray) -> Regions:
        """The regions at ``index`` (integer or boolean), in that order."""
        idx = np.arange(len(self))[index] if np.asarray(index).dtype == bool else np.asarray(
            index, dtype=np.int64)
        rings, geom_offsets = _gather(self.geom_offsets, idx)
        verts, ring_offsets = _gather(self.ring_offsets, rings)
        return Regions(self.coords[verts], ring_offsets, geom_offsets, self.class_id[idx],
                       self.pixels[idx], self.area[idx],
                       None if self.prob_sum is None else self.prob_sum[idx])

    def geometries(self, transform: Affine | None = None) -> np.ndarray:
        """Shapely polygons, in pixel coordinates or mapped through ``transform``."""
        if len(self) == 0:
            return np.empty(0, dtype=object)
        xy = self.coords
        if transform is not None:
            t = transform
            xy = np.column_stack([t.a * xy[:, 0] + t.b * xy[:, 1] + t.c,
                                  t.d * xy[:, 0] + t.e * xy[:, 1] + t.f])
        return shapely.from_ragged_array(shapely.GeometryType.POLYGON, xy,
                                         (self.ring_offsets, self.geom_offsets))

    def with_geometries(self, geoms: np.ndarray) -> Regions:
        """The same regions with other polygons (pixel coordinates), e.g. simplified."""
        if len(geoms) == 0:
            return self
        kind, coords, (ring_offsets, geom_offsets) = shapely.to_ragged_array(geoms)
        if kind != shapely.GeometryType.POLYGON:
            raise RuntimeError(f"expected polygons, got {kind!r}")
        return Regions(np.asarray(coords, dtype=np.float64), ring_offsets.astype(np.int64),
                       geom_offsets.astype(np.int64), self.class_id, self.pixels, self.area,
                       self.prob_sum)

    @staticmethod
    def concat(parts: Sequence[Regions], with_prob: bool) -> Regions:
        """All regions of ``parts``, in order."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Regions.empty(with_prob)
        if len(parts) == 1:
            return parts[0]
        v0 = np.cumsum([0] + [len(p.coords) for p in parts[:-1]])
        r0 = np.cumsum([0] + [len(p.ring_offsets) - 1 for p in parts[:-1]])
        return Regions(
            np.concatenate([p.coords for p in parts]),
            np.concatenate([[0]] + [p.ring_offsets[1:] + v for p, v in zip(parts, v0,
                                                                            strict=True)]),
            np.concatenate([[0]] + [p.geom_offsets[1:] + r for p, r in zip(parts, r0,
                                                                           strict=True)]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.pixels for p in parts]),
            np.concatenate([p.area for p in parts]),
            np.concatenate([p.prob_sum for p in parts if p.prob_sum is not None])
            if with_prob else None)


def drop_collinear(regions: Regions) -> Regions:
    """``regions`` without the vertices that lie on a straight line between their neighbours.

    A vertex ``v`` with neighbours ``u`` and ``w`` on its ring is dropped when the cross
    product ``(v - u) x (w - v)`` is exactly zero (rings stay closed).
    """
    if len(regions) == 0:
        return regions
    offsets = regions.ring_offsets
    lengths = np.diff(offsets) - 1  # distinct vertices per ring (closed rings repeat the first)
    ring_of = np.repeat(np.arange(len(lengths)), lengths)
    start = np.repeat(offsets[:-1], lengths)
    pos = np.arange(len(ring_of)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    n = np.repeat(lengths, lengths)
    xy = regions.coords
    here = xy[start + pos]
    before = xy[start + (pos - 1) % n]
    after = xy[start + (pos + 1) % n]
    cross = ((here[:, 0] - before[:, 0]) * (after[:, 1] - here[:, 1])
             - (here[:, 1] - before[:, 1]) * (after[:, 0] - here[:, 0]))
    keep = cross != 0
    if keep.all():
        return regions
    kept_per_ring = np.bincount(ring_of[keep], minlength=len(lengths))
    kept = here[keep]
    firsts = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(kept_per_ring, out=firsts[1:])
    # re-close each ring: insert its first kept vertex after its last kept one
    closed = np.insert(kept, firsts[1:], kept[firsts[:-1]], axis=0)
    ring_offsets = firsts + np.arange(len(lengths) + 1)
    return Regions(closed, ring_offsets, regions.geom_offsets, regions.class_id,
                   regions.pixels, regions.area, regions.prob_sum)


def _gather(offsets: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Element indices of the ragged rows ``index`` and the new offsets of those rows."""
    starts, stops = offsets[index], offsets[index + 1]
    lengths = stops - starts
    new_offsets = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    elements = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return elements, new_offsets
