import re

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.features import rasterize

from geovision.errors import InputError, InputFileError
from geovision.formats import IGNORE_INDEX
from geovision.geo.aoi import (
    aoi_mask,
    finish_mask,
    read_aoi,
    unlabeled_fill,
    valid_share,
    window_inside,
)
from geovision.geo.classes import classes_from_values
from geovision.geo.grid import Grid
from geovision.geo.windows import PixelWindow


@pytest.fixture(scope="module")
def lux_aoi(luxembourg, tmp_path_factory):
    """AOI: the canton of Luxembourg, grown by 3 km and holed, written in EPSG:3035."""
    tmp = tmp_path_factory.mktemp("aoi")
    cantons = gpd.read_file(luxembourg / "lux.shp")
    area = shapely.union_all(cantons.to_crs("EPSG:3035").geometry[
        cantons["NAME_2"] == "Luxembourg"].values).buffer(3000)
    hole = area.centroid.buffer(2500)
    aoi = shapely.Polygon(area.exterior, [hole.exterior.coords])
    path = tmp / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[aoi], crs="EPSG:3035").to_file(path)
    with rasterio.open(luxembourg / "elev.tif") as ds:
        grid = Grid.of(ds)
    return path, grid, cantons


def _centres_inside(geom, grid):
    """Independent of rasterize: is each pixel centre inside ``geom`` (point in polygon)?"""
    rows, cols = np.indices(grid.shape)
    xs, ys = rasterio.transform.xy(grid.transform, rows.ravel(), cols.ravel())
    return shapely.contains_xy(geom, xs, ys).reshape(grid.shape)


def test_outside_the_aoi_is_ignored_exactly(lux_aoi):
    path, grid, cantons = lux_aoi
    aoi = read_aoi(path)
    area = aoi.in_crs(grid.crs)
    inside = aoi_mask(area, grid)
    expected = _centres_inside(area, grid)
    assert np.array_equal(inside, expected)
    assert 0.05 < inside.mean() < 0.5
    hole = shapely.Polygon(area.interiors[0]) if area.geom_type == "Polygon" else None
    assert hole is not None
    row, col = rasterio.transform.rowcol(grid.transform, hole.centroid.x, hole.centroid.y)
    assert not inside[row, col] and inside[row, col - 8: col + 9].any()  # the hole is outside
    table = classes_from_values(cantons["NAME_1"])
    codes = cantons["NAME_1"].map(table.lookup).tolist()
    for rule in ("background", "ignore"):
        fill = unlabeled_fill(rule)
        ids = rasterize(zip(cantons.geometry, codes, strict=True), out_shape=grid.shape,
                        transform=grid.transform, fill=fill, dtype="uint8")
        labelled = ids != fill
        mask = finish_mask(ids.copy(), inside=inside)
        assert (mask[~expected] == IGNORE_INDEX).all()
        assert np.array_equal(mask[expected], ids[expected])
        assert (mask[expected & ~labelled] == (0 if rule == "background" else 255)).all()


def test_windows_agree_with_the_whole_grid(lux_aoi):
    path, grid, _ = lux_aoi
    area = read_aoi(path).in_crs(grid.crs)
    whole = aoi_mask(area, grid)
    for w in (PixelWindow(0, 0, 90, 95), PixelWindow(30, 30, 16, 16), PixelWindow(50, 20, 33, 7),
              PixelWindow(0, 0, 8, 8)):
        assert np.array_equal(aoi_mask(area, grid.window(w)), whole[w.slices])


def test_tile_selection_helpers(lux_aoi):
    path, grid, _ = lux_aoi
    area = read_aoi(path).in_crs(grid.crs)
    whole = aoi_mask(area, grid)
    rows, cols = np.nonzero(whole)
    # A 3x3 block wholly inside, one straddling the edge, one far away.
    r, c = next((r, c) for r, c in zip(rows, cols, strict=True) if whole[r:r + 3, c:c + 3].all())
    assert window_inside(area, grid.window(PixelWindow(int(r), int(c), 3, 3)))
    assert not window_inside(area, grid.window(PixelWindow(0, 0, 90, 95)))
    assert not window_inside(area, grid.window(PixelWindow(0, 0, 4, 4)))
    valid = np.ones(grid.shape, dtype=bool)
    valid[:, :40] = False
    assert valid_share(whole, valid) == pytest.approx((whole & valid).mean())
    assert valid_share(whole) == pytest.approx(whole.mean())


def test_aoi_errors(tmp_path):
    with pytest.raises(InputFileError, match=re.escape("nope.gpkg: AOI file not found (--aoi)")):
        read_aoi(tmp_path / "nope.gpkg")
    points = tmp_path / "points.geojson"
    gpd.GeoDataFrame(geometry=[shapely.Point(0, 0), shapely.box(0, 0, 1, 1)],
                     crs="EPSG:4326").to_file(points)
    with pytest.raises(InputError, match="points.geojson: the AOI holds 1 point or line "
                                         "geometries; an area of interest is made of polygons"):
        read_aoi(points)
    with pytest.raises(InputError, match=re.escape(
            "--unlabeled: 'skip' is not a choice; choose one of background, ignore")):
        unlabeled_fill("skip")


def test_collections_give_their_polygons(tmp_path):
    path = tmp_path / "coll.geojson"
    coll = shapely.GeometryCollection([shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10)])
    gpd.GeoDataFrame(geometry=[coll], crs="EPSG:32633").to_file(path)
    aoi = read_aoi(path)
    assert aoi.geometry.area == pytest.approx(200) and aoi.features == 1
    assert aoi.describe()["bounds"] == [0, 0, 30, 10]
