"""Polygons block by block: stitched across seams, they equal a whole-raster polygonization."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from geovision.errors import InputError
from geovision.geo.polygonize import polygonize_block
from geovision.geo.polygons import (
    PolygonOptions,
    load_block,
    make_plan,
    regular_edges,
    resolve_classes,
    save_block,
)
from geovision.geo.stitch import Stitcher
from tests.geo.polygon_helpers import (
    NODATA,
    assert_same_regions,
    flood_fill,
    label_image,
    stitch_blocks,
    whole_raster,
)

N = NODATA
# 12 x 12, cut into 5-pixel blocks (5, 5, 2): 9 blocks, seams after rows/cols 4 and 9.
SEAMS = np.array([
    [1, 1, 1, 1, 1, 1, 1, 0, 0, 2, 0, 3],
    [1, 0, 0, 0, 0, 0, 1, 0, 2, 0, 2, 0],  # four 2s touching only diagonally
    [1, 0, 2, 2, 2, 0, 1, 0, 0, 2, 0, 0],
    [1, 0, 2, 0, 2, 0, 1, 0, 0, 0, 0, 0],
    [1, 0, 2, 2, 2, 0, 1, 0, 3, 3, 0, 0],  # ring of 1 (4 blocks) with a hole holding a
    [1, 0, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0],  # ring of 2; the 3 runs through blocks (0, 1),
    [1, 1, 1, 1, 1, 1, 1, 0, 3, 0, N, N],  # (1, 1) and (1, 2)
    [0, 0, 0, 0, 0, 0, 0, 0, 3, 0, N, 2],  # a single 2 beside nodata
    [0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3],
    [0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0],  # (9, 9) and (10, 10): 2s meeting only at the
    [2, 2, 2, 2, 0, 2, 2, 2, 0, 0, 2, 0],  # corner shared by four blocks
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1],
], dtype=np.uint8)


def check_against_whole(classes, options=None, keep=None, **kwargs):
    got, stitcher, _ = stitch_blocks(classes, options, **kwargs)
    ref, ref_class = whole_raster(classes, keep)
    assert_same_regions(got.geometries(), got.class_id, ref, ref_class, classes.shape)
    return got, stitcher


@pytest.mark.parametrize("seed", range(12))
def test_seams_holes_diagonals_and_three_blocks_match_whole_raster(seed):
    got, stitcher = check_against_whole(SEAMS, block=5, seed=seed)
    geoms = got.geometries()
    ring = geoms[(got.class_id == 1) & (got.pixels == 24)]
    assert len(ring) == 1 and len(ring[0].interiors) == 1  # the hole stays a hole
    # the two 2-pixels meeting at the corner of four blocks stay two regions
    assert ((got.class_id == 2) & (got.pixels == 1)).sum() == 7
    assert stitcher.stats.stitched == 2  # the ring of 1 and the 3
    assert stitcher.held_parts == 0


def test_every_class_listed_keeps_background():
    opts = PolygonOptions(classes=("0", "1", "2", "3"))
    got, _ = check_against_whole(SEAMS, opts, keep={0, 1, 2, 3}, block=(5, 3), seed=1)
    assert 0 in got.class_id


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_rasters_any_grid_any_order(data):
    h = data.draw(st.integers(1, 24), label="rows")
    w = data.draw(st.integers(1, 24), label="cols")
    n_classes = data.draw(st.integers(1, 4), label="classes")
    seed = data.draw(st.integers(0, 2**31), label="seed")
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, n_classes, (h, w)).astype(np.uint8)
    classes[rng.random((h, w)) < data.draw(st.sampled_from([0.0, 0.1, 0.4]))] = NODATA
    block = (data.draw(st.integers(1, 9), label="block rows"),
             data.draw(st.integers(1, 9), label="block cols"))
    check_against_whole(classes, block=block, seed=seed)


def test_uneven_grid_cuts_like_inference_pieces():
    rng = np.random.default_rng(3)
    classes = rng.integers(0, 3, (30, 41)).astype(np.uint8)
    plan = make_plan(PolygonOptions(), height=30, width=41, transform=Affine.identity(),
                     crs="EPSG:3857", row_edges=(0, 7, 9, 25, 30), col_edges=(0, 1, 20, 41))
    stitcher, out = Stitcher(plan), []
    for w in reversed(plan.windows()):
        out.append(stitcher.add(polygonize_block(plan, w, classes[w.slices])))
    stitcher.close()
    from geovision.geo.regions import Regions

    got = Regions.concat(out, False)
    ref, ref_class = whole_raster(classes)
    assert_same_regions(got.geometries(), got.class_id, ref, ref_class, classes.shape)


def test_pixels_area_and_mean_prob_match_a_flood_fill():
    rng = np.random.default_rng(11)
    classes = rng.integers(0, 3, (23, 19)).astype(np.uint8)
    classes[:3, :4] = NODATA
    probs = rng.random((3, 23, 19))
    t = Affine(0.5, 0, 1000.0, 0, -0.25, 2000.0)  # feet (EPSG:2263): ft² -> m²
    got, _, _ = stitch_blocks(classes, block=(6, 5), probabilities=probs, transform=t,
                              crs="EPSG:2263", seed=4)
    geoms = got.geometries()
    expected = {}
    for v, pixels in flood_fill(classes):
        rows, cols = np.array(pixels).T
        expected[(v, min(pixels))] = (len(pixels), probs[v, rows, cols].mean())
    assert len(expected) == len(got)
    labels = label_image(geoms, classes.shape)
    for k in range(len(got)):
        # the region's first pixel in row-major order, found from its polygon
        first = np.unravel_index(np.argmax(labels == k + 1), classes.shape)
        n, mean = expected[(int(got.class_id[k]), (int(first[0]), int(first[1])))]
        assert got.pixels[k] == n
        assert got.prob_sum[k] / got.pixels[k] == pytest.approx(mean, rel=1e-12)
        assert got.area[k] == pytest.approx(n * 0.5 * 0.25 * 0.3048006096**2, rel=1e-9)


def test_own_class_probabilities_as_one_band():
    classes = SEAMS.copy()
    probs = np.linspace(0.0, 1.0, classes.size).reshape(classes.shape)
    got, _, _ = stitch_blocks(classes, block=5, probabilities=probs)
    for v, pixels in flood_fill(classes):
        rows, cols = np.array(pixels).T
        match = (got.class_id == v) & (got.pixels == len(pixels)) & np.isclose(
            got.prob_sum, probs[rows, cols].sum())
        assert match.sum() >= 1


def test_geographic_area_is_the_ellipsoidal_area_of_the_pixels():
    classes = np.zeros((40, 30), np.uint8)
    classes[5:33, 3:27] = 1
    classes[10:20, 8:12] = 2  # a hole in region 1
    t = Affine(0.01, 0, 6.0, 0, -0.01, 50.0)
    got, _, plan = stitch_blocks(classes, block=16, transform=t, crs="EPSG:4326")
    geod = Geod(ellps="WGS84")
    for geom, area in zip(got.geometries(plan.affine), got.area, strict=True):
        # along parallels the cell edges are not geodesics: densify before asking Geod
        dense = shapely.segmentize(geom, 0.0005)
        ref = abs(geod.geometry_area_perimeter(dense)[0])
        assert area == pytest.approx(ref, rel=2e-5)


@pytest.mark.parametrize("unit", ["pixels", "m2"])
def test_min_area_judges_whole_regions_not_parts(unit):
    classes = np.zeros((20, 20), np.uint8)
    classes[2:4, 2:4] = 1           # 4 px, inside block (0, 0)
    classes[3:6, 9:11] = 1          # 6 px, crossing the seam at col 10 (3 + 3)
    classes[12:13, 12:19] = 2       # 7 px
    t = Affine(2.0, 0, 0, 0, -2.0, 0)  # 4 m² per pixel
    threshold = 5 if unit == "pixels" else 20.0
    opts = PolygonOptions(min_area=threshold, min_area_unit=unit)
    got, stitcher, _ = stitch_blocks(classes, opts, block=10, transform=t, seed=2)
    assert sorted(got.pixels.tolist()) == [6, 7]
    assert stitcher.stats.dropped == 1  # the 4-px region, dropped in its block


def test_simplify_keeps_a_coverage_across_seams():
    rng = np.random.default_rng(5)
    small = rng.integers(0, 4, (6, 5))
    classes = np.kron(small, np.ones((9, 9), int)).astype(np.uint8)[:50, :43]
    noise = rng.random(classes.shape) < 0.05
    classes[noise] = rng.integers(0, 4, noise.sum())
    opts = PolygonOptions(classes=("0", "1", "2", "3"), simplify=2.5)
    got, _, _ = stitch_blocks(classes, opts, block=(16, 12), seed=9)
    geoms = got.geometries()
    ref, _ = whole_raster(classes, {0, 1, 2, 3})
    assert len(geoms) == len(ref)
    assert shapely.is_valid(geoms).all()
    # no overlaps: the areas add up to the union; no gaps: the union is the whole scene
    assert shapely.area(geoms).sum() == pytest.approx(50 * 43, abs=1e-6)
    assert shapely.union_all(geoms).area == pytest.approx(50 * 43, abs=1e-6)
    assert shapely.get_num_coordinates(geoms).sum() < shapely.get_num_coordinates(ref).sum()
    # neighbours share their edges: what two polygons have in common is a line, not a strip
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = left < right
    common = shapely.intersection(geoms[left[pairs]], geoms[right[pairs]])
    assert (shapely.area(common) < 1e-9).all()
    # simplification never changes the attributes: they are the pixels'
    assert sorted(got.pixels.tolist()) == sorted(shapely.area(ref).astype(int).tolist())


def test_simplify_with_nodata_and_classes_left_out_has_no_overlaps():
    rng = np.random.default_rng(8)
    classes = np.kron(rng.integers(0, 3, (5, 5)), np.ones((7, 7), int)).astype(np.uint8)
    classes[:10, :10] = NODATA
    got, _, _ = stitch_blocks(classes, PolygonOptions(simplify=3.0), block=8, seed=1)
    geoms = got.geometries()
    assert shapely.is_valid(geoms).all()
    assert shapely.area(geoms).sum() == pytest.approx(shapely.union_all(geoms).area)
    assert not set(got.class_id.tolist()) & {0, NODATA}


def test_regions_come_out_as_soon_as_every_block_they_reach_is_done():
    classes = np.zeros((8, 12), np.uint8)
    classes[1:3, 2:7] = 1    # crosses the seam between blocks (0, 0) and (0, 1) only
    classes[5:7, 3:9] = 2    # crosses blocks (1, 0) and (1, 1)
    plan = make_plan(PolygonOptions(), height=8, width=12, transform=Affine.identity(),
                     crs="EPSG:3857", block_size=4)
    blocks = {plan.block_index(w): polygonize_block(plan, w, classes[w.slices])
              for w in plan.windows()}
    stitcher = Stitcher(plan)
    assert len(stitcher.add(blocks[(0, 0)])) == 0
    assert stitcher.held_parts == 1
    first = stitcher.add(blocks[(0, 1)])
    assert first.class_id.tolist() == [1] and first.pixels.tolist() == [10]
    assert stitcher.held_parts == 0
    for index in [(1, 2), (0, 2), (1, 0)]:
        assert len(stitcher.add(blocks[index])) == 0
    assert stitcher.add(blocks[(1, 1)]).pixels.tolist() == [12]
    stitcher.close()


def test_open_parts_stay_few_in_row_major_order():
    rng = np.random.default_rng(2)
    classes = np.kron(rng.integers(0, 3, (40, 40)), np.ones((3, 3), int)).astype(np.uint8)
    _, stitcher, _ = stitch_blocks(classes, block=20, seed=None)
    open_per_block = max(len(polygonize_block(stitcher.plan, w, classes[w.slices]).open)
                         for w in stitcher.plan.windows())
    # held: the open parts along about one row of blocks, never the whole scene's
    assert stitcher.stats.peak_parts <= (120 // 20 + 2) * open_per_block


def test_stitcher_refuses_duplicates_and_reports_missing_blocks():
    plan = make_plan(PolygonOptions(), height=8, width=8, transform=Affine.identity(),
                     crs="EPSG:3857", block_size=4)
    w = plan.windows()[0]
    block = polygonize_block(plan, w, SEAMS[w.slices])
    stitcher = Stitcher(plan)
    stitcher.add(block)
    with pytest.raises(ValueError, match="added twice"):
        stitcher.add(block)
    with pytest.raises(RuntimeError, match="3 block"):
        stitcher.close()


def test_block_value_is_plain_and_round_trips(tmp_path):
    plan = make_plan(PolygonOptions(), height=12, width=12, transform=Affine.identity(),
                     crs="EPSG:3857", block_size=5)
    w = plan.windows()[4]
    block = polygonize_block(plan, w, SEAMS[w.slices], np.ones((4, 5, 5)) * 0.5)
    again = pickle.loads(pickle.dumps(block))
    back = load_block(save_block(tmp_path / "b.npz", block))
    for other in (again, back):
        assert other.window == block.window and other.dropped == block.dropped
        for a, b in ((block.finished, other.finished), (block.open, other.open)):
            assert shapely.equals(a.geometries(), b.geometries()).all()
            np.testing.assert_array_equal(a.prob_sum, b.prob_sum)
        for a, b in zip(block.sides, other.sides, strict=True):
            np.testing.assert_array_equal(a, b)


def test_window_must_be_a_block_and_arrays_must_fit():
    plan = make_plan(PolygonOptions(), height=12, width=12, transform=Affine.identity(),
                     crs="EPSG:3857", block_size=5)
    from geovision.geo.windows import PixelWindow

    with pytest.raises(ValueError, match="not a block"):
        polygonize_block(plan, PixelWindow(1, 0, 5, 5), SEAMS[1:6, :5])
    with pytest.raises(InputError, match="class array has shape"):
        polygonize_block(plan, PixelWindow(0, 0, 5, 5), SEAMS[:4, :5])
    with pytest.raises(InputError, match="class id 3 has no probability band"):
        polygonize_block(plan, PixelWindow(0, 10, 5, 2), SEAMS[:5, 10:], np.ones((2, 5, 2)))
    with pytest.raises(InputError, match="must be integers"):
        polygonize_block(plan, PixelWindow(0, 0, 5, 5), SEAMS[:5, :5].astype(np.float32))


def test_options_are_checked_with_the_option_named():
    with pytest.raises(InputError, match="--format: 'shp' is not a vector format; choose one "
                                         "of gpkg, geojson"):
        PolygonOptions(format="shp")
    with pytest.raises(InputError, match="--min-area-unit"):
        PolygonOptions(min_area_unit="acres")
    with pytest.raises(InputError, match="--min-area: -1"):
        PolygonOptions(min_area=-1)
    with pytest.raises(InputError, match="--simplify"):
        PolygonOptions(simplify=float("nan"))
    with pytest.raises(InputError, match="--layer: 'gpkg_contents' starts with a prefix"):
        PolygonOptions(layer="gpkg_contents")
    assert PolygonOptions(format="geojson").suffix == ".polygons.geojson"


def test_classes_by_name_or_id():
    names = {0: "background", 1: "building", 2: "water"}
    assert resolve_classes(PolygonOptions(), names) is None
    assert resolve_classes(PolygonOptions(classes=("water", "1")), names) == (1, 2)
    assert resolve_classes(PolygonOptions(classes=("building,background",)), names) == (0, 1)
    with pytest.raises(InputError, match=r"--classes: unknown class 'road'; classes are: "
                                         "0=background"):
        resolve_classes(PolygonOptions(classes=("road",)), names)
    with pytest.raises(InputError, match="--vector-classes: unknown class 'road'"):
        resolve_classes(PolygonOptions(classes=("road",)), names, flag="--vector-classes")


def test_regular_edges():
    assert regular_edges(12, 5) == (0, 5, 10, 12)
    assert regular_edges(10, 5) == (0, 5, 10)
    assert regular_edges(3, 8) == (0, 3)
