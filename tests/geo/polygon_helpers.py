"""Independent answers for the polygon tests: whole-raster polygonization and a flood fill."""

from __future__ import annotations

import random
from collections import deque

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize, shapes

from geovision.geo.polygonize import polygonize_block
from geovision.geo.polygons import PolygonOptions, PolygonPlan, make_plan
from geovision.geo.regions import Regions
from geovision.geo.stitch import Stitcher

NODATA = 255


def whole_raster(classes: np.ndarray, keep: set[int] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Polygons and class ids of one ``rasterio.features.shapes`` call over the whole raster."""
    mask = classes != NODATA
    if keep is not None:
        mask &= np.isin(classes, list(keep))
    else:
        mask &= classes != 0
    found = [(shapely.geometry.shape(g), int(v))
             for g, v in shapes(classes, mask=mask, connectivity=4)]
    return (np.array([g for g, _ in found], dtype=object),
            np.array([v for _, v in found], dtype=np.int64))


def stitch_blocks(classes: np.ndarray, options: PolygonOptions | None = None, *,
                  block: int | tuple[int, int] = 4, seed: int | None = 0,
                  probabilities: np.ndarray | None = None,
                  transform: Affine = Affine.identity(), crs: str = "EPSG:32631",
                  ) -> tuple[Regions, Stitcher, PolygonPlan]:
    """Polygonize ``classes`` block by block, blocks fed in a shuffled order (None: in order)."""
    plan = make_plan(options or PolygonOptions(), height=classes.shape[0],
                     width=classes.shape[1], transform=transform, crs=crs, block_size=block)
    windows = plan.windows()
    if seed is not None:
        random.Random(seed).shuffle(windows)
    stitcher = Stitcher(plan, with_prob=probabilities is not None)
    out = []
    for w in windows:
        p = None
        if probabilities is not None:
            p = probabilities[(..., *w.slices)]
        out.append(stitcher.add(polygonize_block(plan, w, classes[w.slices], p)))
    stitcher.close()
    return Regions.concat(out, probabilities is not None), stitcher, plan


def label_image(geoms: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels burned with 1 + the index of the polygon covering them (0: none)."""
    if len(geoms) == 0:
        return np.zeros(shape, np.int32)
    return rasterize(((g, i + 1) for i, g in enumerate(geoms)), out_shape=shape, fill=0,
                     dtype="int32")


def assert_same_regions(got: np.ndarray, got_class: np.ndarray, ref: np.ndarray,
                        ref_class: np.ndarray, shape: tuple[int, int]) -> None:
    """The two polygon sets hold the same regions: same count, same pixels, equal shapes."""
    assert len(got) == len(ref)
    a, b = label_image(got, shape), label_image(ref, shape)
    assert ((a > 0) == (b > 0)).all()
    pairs = np.unique(np.stack([a[a > 0], b[a > 0]]), axis=1)
    # one-to-one: every region maps to exactly one reference region and back
    assert len(np.unique(pairs[0])) == len(pairs[0]) == len(got)
    assert len(np.unique(pairs[1])) == len(pairs[1]) == len(ref)
    gi, ri = pairs[0] - 1, pairs[1] - 1
    assert (got_class[gi] == ref_class[ri]).all()
    assert shapely.equals(got[gi], ref[ri]).all()
    assert shapely.is_valid(got).all()


def flood_fill(classes: np.ndarray, keep: set[int] | None = None,
               ) -> list[tuple[int, list[tuple[int, int]]]]:
    """4-connected regions of equal class by breadth-first search: (class, pixels)."""
    h, w = classes.shape
    seen = np.zeros((h, w), bool)
    regions = []
    for r in range(h):
        for c in range(w):
            v = int(classes[r, c])
            if seen[r, c] or v == NODATA or (v == 0 if keep is None else v not in keep):
                continue
            seen[r, c] = True
            todo, pixels = deque([(r, c)]), []
            while todo:
                y, x = todo.popleft()
                pixels.append((y, x))
                for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= yy < h and 0 <= xx < w and not seen[yy, xx] and \
                            classes[yy, xx] == v:
                        seen[yy, xx] = True
                        todo.append((yy, xx))
            regions.append((v, pixels))
    return regions
