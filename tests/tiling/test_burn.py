"""`geovision.tiling.burn`: per-block burning equals one rasterize over the whole source."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize

from geovision.geo.vector import read_labels, to_crs
from geovision.geo.windows import PixelWindow
from geovision.tiling.burn import SourceLabels, burn, geojson


def _whole(geoms, values, transform, shape):
    return rasterize(zip(geoms, values.tolist(), strict=True), out_shape=shape,
                     transform=transform, fill=0, dtype="uint8")


@pytest.mark.parametrize("block", [(64, 320), (128, 96), (50, 77), (320, 320)])
def test_blocks_equal_whole_source_rasterize(sample_two_crs, block):
    lab = read_labels(sample_two_crs.labels, class_field="kind")
    for path in sample_two_crs.rasters:
        with rasterio.open(path) as ds:
            transform, shape, crs = ds.transform, ds.shape, ds.crs
        geoms = np.asarray(to_crs(lab.frame, crs).geometry.values)
        values = lab.frame["class_id"].to_numpy(np.int16)
        ref = _whole(geoms, values, transform, shape)
        labels = SourceLabels(geoms, values, transform)
        bh, bw = block
        for r in range(0, shape[0], bh):
            for c in range(0, shape[1], bw):
                w = PixelWindow(r, c, min(bh, shape[0] - r), min(bw, shape[1] - c))
                got = burn(labels.select(w), w, transform)
                np.testing.assert_array_equal(got, ref[w.slices])


def test_expected_blocks_drop_mappings_and_keep_their_labels():
    t = Affine(1, 0, 0, 0, -1, 64)
    # one square per quarter, one square over all four
    geoms = np.array([shapely.box(x + 4, y + 4, x + 20, y + 20) for x in (0, 32)
                      for y in (0, 32)] + [shapely.box(16, 16, 48, 48)], dtype=object)
    values = np.array([1, 2, 3, 4, 5], dtype=np.int16)
    quarters = [PixelWindow(r, c, 32, 32) for r in (0, 32) for c in (0, 32)]
    plain, expecting = SourceLabels(geoms, values, t), SourceLabels(geoms, values, t)
    expecting.expect(quarters)
    for k, w in enumerate(quarters):
        got, ref = expecting.select(w), plain.select(w)
        assert got.shapes == ref.shapes
        np.testing.assert_array_equal(got.values, ref.values)
        # the shared square's mapping lives until the last quarter took it
        assert (expecting._mappings[4] is None) == (k == len(quarters) - 1)
    assert all(m is None for m in expecting._mappings)
    assert all(m is not None for m in plain._mappings)
    again = expecting.select(quarters[0])  # asked again: made anew, the same labels
    assert again.shapes == plain.select(quarters[0]).shapes


def test_later_features_win_whatever_the_tree_order():
    t = Affine(1, 0, 0, 0, -1, 64)
    # Overlapping squares listed so that the STRtree returns them in another order.
    geoms = np.array([shapely.box(x, 10, x + 30, 40) for x in (30, 20, 10, 0)], dtype=object)
    values = np.array([1, 2, 3, 4], dtype=np.int16)
    labels = SourceLabels(geoms, values, t)
    w = PixelWindow(0, 0, 64, 64)
    np.testing.assert_array_equal(burn(labels.select(w), w, t), _whole(geoms, values, t, (64, 64)))
    assert list(labels.hits(w)) == [0, 1, 2, 3]


def test_geojson_equals_geo_interface_for_holes_and_multipolygons():
    ring = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (4, 2), (4, 4)]])
    multi = shapely.MultiPolygon([ring, shapely.box(20, 20, 25, 26)])
    line = shapely.LineString([(0, 0), (5, 5)])
    geoms = np.array([ring, multi, line, shapely.box(1, 1, 2, 2)], dtype=object)
    got = geojson(geoms)
    for g, m in zip(geoms, got, strict=True):
        assert shapely.geometry.shape(m).equals_exact(g, 0)
        assert m["type"] == g.__geo_interface__["type"]


def test_empty_block_is_background():
    t = Affine(1, 0, 0, 0, -1, 100)
    labels = SourceLabels(np.array([shapely.box(0, 90, 5, 100)], dtype=object),
                          np.array([1], dtype=np.int16), t)
    w = PixelWindow(50, 50, 20, 30)
    assert len(labels.select(w)) == 0
    assert (burn(labels.select(w), w, t) == 0).all() and burn(None, w, t).shape == (20, 30)
