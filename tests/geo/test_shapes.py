import math
import re

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.features import rasterize

from geovision.errors import InputError
from geovision.geo.shapes import check_buffer, explode_collections, kinds, to_areas, to_boxes

# A circle drawn by shapely's buffer is a polygon with 8 segments per quarter: it reaches
# the full radius at its vertices and r*cos(pi/32) between them.
INNER = math.cos(math.pi / 32)


@pytest.fixture(scope="module")
def nc_points(north_carolina):
    """North Carolina's 100 county centroids in UTM 17N, and a 1 km grid over them."""
    counties = gpd.read_file(north_carolina).to_crs("EPSG:32617")
    points = np.asarray(counties.geometry.centroid.values)
    left, bottom, right, top = counties.total_bounds
    res = 1000.0
    tr = Affine(res, 0, math.floor(left / res) * res, 0, -res, math.ceil(top / res) * res)
    shape = (int((tr.f - bottom) // res) + 2, int((right - tr.c) // res) + 2)
    return points, tr, shape


def _pixel_distances(geom, tr, shape):
    """Distance in pixels from every pixel centre to ``geom`` (given in map units)."""
    rows, cols = np.indices(shape)
    centres = shapely.points(cols.ravel() + 0.5, rows.ravel() + 0.5)
    in_pixels = shapely.transform(geom, lambda xy: np.column_stack(~tr @ (xy[:, 0], xy[:, 1])))
    return shapely.distance(centres, in_pixels).reshape(shape)


def _assert_burned_within(mask, geom, radius, tr):
    """``mask`` holds every pixel centre closer than the polygonal radius and none farther."""
    x0, y0, x1, y1 = shapely.bounds(geom)
    c0, r0 = ~tr @ (x0, y1)
    c1, r1 = ~tr @ (x1, y0)
    pad = int(radius) + 2
    rs = slice(max(int(r0) - pad, 0), int(r1) + pad + 1)
    cs = slice(max(int(c0) - pad, 0), int(c1) + pad + 1)
    sub_tr = tr @ Affine.translation(cs.start, rs.start)
    part = mask[rs, cs]
    dist = _pixel_distances(geom, sub_tr, part.shape)
    assert part[dist < radius * INNER - 1e-9].all()
    assert not part[dist > radius].any()
    assert part.sum() == mask.sum()  # nothing burned outside the window looked at
    return part.sum()


def test_points_without_buffer_are_refused(nc_points):
    points, _, _ = nc_points
    with pytest.raises(InputError, match=re.escape(
            "nc.gpkg: holds 100 points, which cover no area; give --buffer PX to turn points "
            "into discs and lines into corridors of PX pixels (boxes of side 2*PX for "
            "detection), or leave them out of the file")):
        check_buffer(points, None, "nc.gpkg")
    with pytest.raises(InputError, match="--buffer: 0 must be a positive number of pixels"):
        check_buffer(points, 0, "nc.gpkg")
    with pytest.raises(InputError, match="give --buffer PX"):
        to_areas(points, None, (1000.0, 1000.0))


def test_centroids_become_discs_of_buffer_pixels(nc_points):
    points, tr, shape = nc_points
    discs = to_areas(points, 3, (tr.a, -tr.e))
    assert shapely.get_type_id(discs).tolist() == [3] * 100
    burned = rasterize(((d, i + 1) for i, d in enumerate(discs)), out_shape=shape,
                       transform=tr, fill=0, dtype="uint8")
    for i in range(100):
        assert 24 <= _assert_burned_within(burned == i + 1, points[i], 3, tr) <= 33  # ~pi*3^2


def test_discs_follow_pixels_not_map_units():
    # Pixels twice as tall as wide (degrees): a disc of 2 pixels is an ellipse on the map.
    tr = Affine(0.01, 0, -80.0, 0, -0.02, 36.0)
    point = shapely.Point(-79.9, 35.8)
    disc = to_areas(np.array([point]), 2, (0.01, 0.02))[0]
    dist = _pixel_distances(point, tr, (20, 20))
    mask = rasterize([(disc, 1)], out_shape=(20, 20), transform=tr, fill=0, dtype="uint8") > 0
    assert mask[dist < 2 * INNER - 1e-9].all() and not mask[dist > 2].any()
    minx, miny, maxx, maxy = shapely.bounds(disc)
    assert (maxx - minx) == pytest.approx(0.04) and (maxy - miny) == pytest.approx(0.08)


def test_lines_become_corridors(nc_points, north_carolina):
    _, tr, shape = nc_points
    counties = gpd.read_file(north_carolina).to_crs("EPSG:32617")
    line = counties.geometry.iloc[10].boundary  # a county outline as a (multi)line
    corridor = to_areas(np.array([line]), 1.5, (tr.a, -tr.e))[0]
    burned = rasterize([(corridor, 1)], out_shape=shape, transform=tr, fill=0,
                       dtype="uint8") > 0
    _assert_burned_within(burned, line, 1.5, tr)


def test_detection_boxes():
    res = (10.0, 5.0)
    geoms = np.array([shapely.Point(100, 200), shapely.LineString([(0, 0), (50, 0)]),
                      shapely.box(1, 2, 3, 4)])
    boxes = to_boxes(geoms, 2, res)
    assert boxes.tolist() == [[80, 190, 120, 210], [-20, -10, 70, 10], [1, 2, 3, 4]]
    with pytest.raises(InputError, match="holds 1 point and 1 line"):
        to_boxes(geoms, None, res)
    assert to_boxes(geoms[2:], None, res).tolist() == [[1, 2, 3, 4]]


def test_collections_are_split_and_each_part_handled_by_type():
    coll = shapely.GeometryCollection([
        shapely.box(0, 0, 10, 10), shapely.LineString([(20, 0), (30, 0)]),
        shapely.GeometryCollection([shapely.Point(50, 50), shapely.Point()]),
    ])
    geoms = np.array([shapely.box(100, 100, 110, 110), coll, shapely.Point(5, 5)])
    parts, owner = explode_collections(geoms)
    assert owner.tolist() == [0, 1, 1, 1, 2]
    assert kinds(parts).tolist() == ["polygon", "polygon", "line", "point", "point"]
    with pytest.raises(InputError, match="holds 2 points and 1 line"):
        check_buffer(parts, None, "mixed.geojson")
    areas = to_areas(parts, 1.0, (1.0, 1.0))
    assert shapely.equals(areas[1], parts[1])  # polygons unchanged
    assert shapely.get_type_id(areas).tolist() == [3, 3, 3, 3, 3]
    assert areas[2].area == pytest.approx(10 * 2 + math.pi, rel=0.01)
    # A collection holding only polygons burns like them: nothing else is burned.
    with pytest.raises(ValueError, match="split geometry collections first"):
        kinds(geoms)
