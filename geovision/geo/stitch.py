"""Joining open parts across block seams, blocks arriving in any order.

The stitcher keeps, for each block that is done, the runs of open-part pixels along its sides
whose neighbour is not done yet, and for each open part its polygon and sums. When a block
arrives, its runs are matched with those of each neighbour already done: two parts across a
seam belong to one region when they have the same class and runs that overlap (they then
share at least one pixel edge: 4-connectivity; touching only at a corner does not join).
Parts are joined with a union-find; each region counts the sides its parts touch whose
neighbour has not arrived. When that count reaches zero, every block the region could reach is
done: its parts are united (exactly: integer pixel coordinates) and it is emitted. Only open
parts and the runs along unfinished seams are held, never a raster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely

from geovision.geo.polygonize import _large_enough
from geovision.geo.polygons import BlockPolygons, PolygonPlan
from geovision.geo.regions import Regions, drop_collinear

#: The side facing each side (indices into :data:`~geovision.geo.polygons.SIDES`).
_FACING = (1, 0, 3, 2)


@dataclass
class _Part:
    """An open part held until its region is complete."""

    geometry: shapely.Geometry
    class_id: int
    pixels: int
    area: float
    prob_sum: float


@dataclass
class StitchStats:
    """Counts of a stitching run.

    Attributes:
        blocks: blocks added.
        stitched: emitted regions made of more than one part.
        dropped: regions left out by ``min_area`` (in blocks and here).
        peak_parts: most open parts held at once.
    """

    blocks: int = 0
    stitched: int = 0
    dropped: int = 0
    peak_parts: int = 0


class Stitcher:
    """Joins the open parts of blocks into regions; accepts blocks in any order.

    Example::

        stitcher = Stitcher(plan)
        for block in blocks_as_they_finish:
            writer.write(stitcher.add(block))
        stitcher.close()          # raises when a block never arrived
    """

    def __init__(self, plan: PolygonPlan, *, with_prob: bool = False) -> None:
        """Start stitching the blocks of ``plan`` (``with_prob``: blocks carry prob sums)."""
        self.plan = plan
        self.with_prob = with_prob
        self.stats = StitchStats()
        self._done: set[tuple[int, int]] = set()
        self._runs: dict[tuple[tuple[int, int], int], tuple[np.ndarray, np.ndarray]] = {}
        self._parts: dict[int, _Part] = {}
        self._parent: dict[int, int] = {}
        self._members: dict[int, list[int]] = {}
        self._pending: dict[int, int] = {}
        self._next = 0

    @property
    def held_parts(self) -> int:
        """Open parts held now."""
        return len(self._parts)

    def add(self, block: BlockPolygons) -> Regions:
        """Take a finished block; return the regions it completes.

        Returns:
            The block's finished regions and every region that the block completed (its
            parts united), filtered by ``min_area``.

        Raises:
            ValueError: the block is not in the plan's grid or was added before.
        """
        index = self.plan.block_index(block.window)
        if index in self._done:
            raise ValueError(f"block {block.window} was added twice")
        self._done.add(index)
        self.stats.blocks += 1
        self.stats.dropped += block.dropped
        opened = block.open
        ids = np.arange(self._next, self._next + len(opened))
        self._next += len(opened)
        geoms = opened.geometries()
        for k, gid in enumerate(ids.tolist()):
            self._parts[gid] = _Part(
                geoms[k], int(opened.class_id[k]), int(opened.pixels[k]),
                float(opened.area[k]),
                float(opened.prob_sum[k]) if opened.prob_sum is not None else 0.0)
            self._parent[gid] = gid
            self._members[gid] = [gid]
            self._pending[gid] = 0
        self.stats.peak_parts = max(self.stats.peak_parts, len(self._parts))
        touched: set[int] = set(ids.tolist())
        for side, neighbour in enumerate(self.plan.neighbours(index)):
            runs = block.sides[side]
            if neighbour is None:
                continue
            mine = np.unique(runs[:, 2]) if len(runs) else np.zeros(0, np.int64)
            if neighbour not in self._done:
                self._runs[(index, side)] = (runs[:, :2], ids[runs[:, 2]])
                for gid in ids[mine].tolist():
                    self._pending[self._find(gid)] += 1
                continue
            their_runs, their_ids = self._runs.pop((neighbour, _FACING[side]))
            for a, b in _overlaps(runs[:, :2], their_runs):
                ga, gb = int(ids[runs[a, 2]]), int(their_ids[b])
                if self._parts[ga].class_id == self._parts[gb].class_id:
                    self._union(ga, gb)
            for gid in np.unique(their_ids).tolist():
                root = self._find(gid)
                self._pending[root] -= 1
                touched.add(gid)
        done = self._complete(touched)
        return Regions.concat([block.finished, done], self.with_prob)

    def close(self) -> None:
        """Check that every block arrived and nothing is left open.

        Raises:
            RuntimeError: blocks are missing (their regions were never emitted).
        """
        n_rows, n_cols = self.plan.grid_shape
        missing = n_rows * n_cols - len(self._done)
        if missing or self._parts:
            raise RuntimeError(f"stitching incomplete: {missing} block(s) missing, "
                               f"{len(self._parts)} open part(s) left")

    def _find(self, gid: int) -> int:
        parent = self._parent
        root = gid
        while parent[root] != root:
            root = parent[root]
        while parent[gid] != root:
            parent[gid], gid = root, parent[gid]
        return root

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return
        if len(self._members[ra]) < len(self._members[rb]):
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._members[ra].extend(self._members.pop(rb))
        self._pending[ra] += self._pending.pop(rb)

    def _complete(self, touched: Iterable[int]) -> Regions:
        """Emit the regions among ``touched`` parts' roots that nothing can reach any more."""
        roots = {self._find(g) for g in touched}
        ready = sorted(r for r in roots if self._pending[r] == 0)
        if not ready:
            return Regions.empty(self.with_prob)
        geoms, class_id, pixels, area, prob = [], [], [], [], []
        for root in ready:
            members = self._members.pop(root)
            del self._pending[root]
            parts = [self._parts.pop(g) for g in members]
            for g in members:
                del self._parent[g]
            if len(parts) == 1:
                geom = parts[0].geometry
            else:
                geom = _merge([p.geometry for p in parts])
                self.stats.stitched += 1
            geoms.append(geom)
            class_id.append(parts[0].class_id)
            pixels.append(sum(p.pixels for p in parts))
            area.append(sum(p.area for p in parts))
            prob.append(sum(p.prob_sum for p in parts))
        regions = Regions.empty(self.with_prob)
        regions = Regions(regions.coords, regions.ring_offsets, regions.geom_offsets,
                          np.asarray(class_id, np.int64), np.asarray(pixels, np.int64),
                          np.asarray(area, np.float64),
                          np.asarray(prob, np.float64) if self.with_prob else None
                          ).with_geometries(np.asarray(geoms, dtype=object))
        regions = drop_collinear(regions)
        keep = _large_enough(self.plan, regions)
        self.stats.dropped += int((~keep).sum())
        return regions.take(keep)


def _merge(geoms: list[shapely.Geometry]) -> shapely.Geometry:
    """The union of a region's parts, with the vertices left on seams removed.

    Parts share whole pixel edges along seams, so the union of their integer coordinates is
    exact; the vertices where an edge crossed a seam stay in the union as collinear points,
    which a zero-tolerance simplification drops.
    """
    merged = shapely.union_all(geoms)
    if merged.geom_type != "Polygon":
        raise RuntimeError(f"parts of one region united into a {merged.geom_type}")
    return merged


def _overlaps(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of runs ``a[i]`` and ``b[j]`` (``[start, stop)``) sharing a pixel.

    Both arrays are sorted by start and their runs do not overlap each other, so their
    stops are sorted too.
    """
    if len(a) == 0 or len(b) == 0:
        return []
    first = np.searchsorted(b[:, 1], a[:, 0], side="right")
    last = np.searchsorted(b[:, 0], a[:, 1], side="left")
    out: list[tuple[int, int]] = []
    for i in np.flatnonzero(last > first).tolist():
        out.extend((i, j) for j in range(int(first[i]), int(last[i])))
    return out
