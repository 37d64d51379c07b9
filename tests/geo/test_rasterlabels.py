import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize
from rasterio.warp import transform

from geovision.errors import InputError
from geovision.formats import IGNORE_INDEX
from geovision.geo.classes import classes_from_values
from geovision.geo.classmap import parse_class_map
from geovision.geo.grid import Grid
from geovision.geo.rasterlabels import (
    _source_window,
    label_classes,
    majority_class,
    open_label_raster,
    read_label_window,
)
from geovision.geo.windows import PixelWindow

LABEL_CRS = "EPSG:2169"  # Luxembourg's national grid, metres
LABEL_RES = 100.0


@pytest.fixture(scope="module")
def lux(luxembourg, tmp_path_factory):
    """Districts (NAME_1) as a class raster in EPSG:2169 at 100 m, and the elev.tif grid."""
    tmp = tmp_path_factory.mktemp("lux")
    frame = gpd.read_file(luxembourg / "lux.shp")
    table = classes_from_values(frame["NAME_1"])
    codes = frame["NAME_1"].map(table.lookup).to_numpy()
    local = frame.to_crs(LABEL_CRS)
    left, bottom, right, top = local.total_bounds
    left, top = np.floor(left / LABEL_RES) * LABEL_RES - 1000, np.ceil(top / LABEL_RES) * \
        LABEL_RES + 1000
    width = int(np.ceil((right - left) / LABEL_RES)) + 10
    height = int(np.ceil((top - bottom) / LABEL_RES)) + 10
    tr = Affine(LABEL_RES, 0, left, 0, -LABEL_RES, top)
    burned = rasterize(zip(local.geometry, codes.tolist(), strict=True), out_shape=(height, width),
                       transform=tr, fill=0, dtype="uint8")
    path = tmp / "districts_2169.tif"
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1,
                       dtype="uint8", crs=LABEL_CRS, transform=tr, nodata=255, tiled=True,
                       blockxsize=128, blockysize=128) as dst:
        dst.write(burned, 1)
    with rasterio.open(luxembourg / "elev.tif") as ds:
        grid = Grid.of(ds)
    direct = rasterize(zip(frame.geometry, codes.tolist(), strict=True), out_shape=grid.shape,
                       transform=grid.transform, fill=0, dtype="uint8")
    return {"path": path, "grid": grid, "direct": direct, "frame": frame, "codes": codes,
            "burned": burned, "transform": tr}


def test_reprojected_raster_labels_agree_with_polygons(lux):
    raster = open_label_raster(str(lux["path"]))
    table = label_classes(raster)  # by value: the district codes 1..3 are the ids
    got = read_label_window(raster, table, lux["grid"])
    assert got.dropped == 0 and set(np.unique(got.ids)) == {0, 1, 2, 3}
    differ = got.ids != lux["direct"]
    # Exact away from boundaries: 25 of 8550 pixels differ (0.3%), and each of them has its
    # centre within half a label pixel's diagonal of a district boundary.
    assert differ.sum() <= 40 and differ.mean() < 0.005
    rows, cols = np.nonzero(differ)
    xs, ys = rasterio.transform.xy(lux["grid"].transform, rows, cols)
    px, py = transform("EPSG:4326", LABEL_CRS, xs, ys)
    local = lux["frame"].to_crs(LABEL_CRS)
    edges = shapely.union_all([shapely.union_all(local.geometry[lux["codes"] == c]).boundary
                               for c in (1, 2, 3)])
    dist = shapely.distance(shapely.points(px, py), edges)
    assert dist.max() <= LABEL_RES * np.sqrt(2) / 2 + 1e-6


def test_windows_agree_with_the_full_read(lux):
    raster = open_label_raster(str(lux["path"]))
    table = label_classes(raster)
    full = read_label_window(raster, table, lux["grid"]).ids
    with rasterio.open(raster.path) as ds:
        for window in (PixelWindow(0, 0, 32, 32), PixelWindow(37, 51, 40, 44),
                       PixelWindow(80, 90, 10, 5)):
            part = read_label_window(raster, table, lux["grid"].window(window), ds=ds).ids
            assert np.array_equal(part, full[window.slices])


def test_reads_only_the_window_needed(lux):
    raster = open_label_raster(str(lux["path"]))
    tile = lux["grid"].window(PixelWindow(40, 40, 16, 16))
    win = _source_window(raster.grid, tile)
    # A 16x16 tile of ~600x930 m pixels spans ~10x15 km: ~100x150 label pixels of 100 m.
    assert win.width * win.height < 0.06 * raster.grid.width * raster.grid.height


def _nearest(grid, path, fill):
    """Independent nearest neighbour: the label pixel under each target pixel centre."""
    with rasterio.open(path) as ds:
        values, tr, nodata = ds.read(1), ds.transform, ds.nodata
    rows, cols = np.indices(grid.shape)
    xs, ys = rasterio.transform.xy(grid.transform, rows.ravel(), cols.ravel())
    lx, ly = transform(grid.crs, LABEL_CRS, xs, ys)
    c, r = ~tr @ (np.asarray(lx), np.asarray(ly))
    c, r = np.floor(c).astype(int), np.floor(r).astype(int)
    inside = (c >= 0) & (c < values.shape[1]) & (r >= 0) & (r < values.shape[0])
    out = np.full(c.shape, fill, dtype=np.uint8)
    got = values[r[inside], c[inside]]
    out[inside] = np.where(got == nodata, IGNORE_INDEX, got)
    return out.reshape(grid.shape)


@pytest.mark.parametrize("fill", [0, IGNORE_INDEX])
def test_nodata_is_ignored_and_outside_is_the_fill(lux, tmp_path, fill):
    burned = lux["burned"].copy()
    h, w = burned.shape
    burned[: h // 2, w // 3: w // 2] = 255  # a nodata block
    start = w // 3  # the western third lies outside the label raster
    path = tmp_path / "partial.tif"
    with rasterio.open(path, "w", driver="GTiff", width=w - start, height=h, count=1,
                       dtype="uint8", crs=LABEL_CRS, nodata=255,
                       transform=lux["transform"] @ Affine.translation(start, 0)) as dst:
        dst.write(burned[:, start:], 1)
    raster = open_label_raster(str(path))
    ids = read_label_window(raster, label_classes(raster), lux["grid"], fill=fill).ids
    expected = _nearest(lux["grid"], path, fill)
    assert np.array_equal(ids, expected)
    assert (ids == fill).sum() > 1000 and (ids == IGNORE_INDEX).sum() > 500


def test_reprojection_is_the_label_pixel_under_each_centre(lux):
    raster = open_label_raster(str(lux["path"]))
    ids = read_label_window(raster, label_classes(raster), lux["grid"]).ids
    assert np.array_equal(ids, _nearest(lux["grid"], lux["path"], 0))


def test_class_map_on_raster_values(lux):
    raster = open_label_raster(str(lux["path"]))
    table = parse_class_map({"classes": {1: {"id": 10, "name": "Diekirch"},
                                         2: {"id": 20, "name": "Grevenmacher"},
                                         0: "background"},
                             "unlisted": "drop"})
    got = read_label_window(raster, table, lux["grid"])
    direct = lux["direct"]
    expect = np.select([direct == 1, direct == 2, direct == 3], [10, 20, IGNORE_INDEX], 0)
    assert (got.ids == expect).mean() > 0.99
    assert got.dropped == int((got.ids == IGNORE_INDEX).sum()) > 0  # value 3 is not listed
    assert set(np.unique(got.ids)) == {0, 10, 20, IGNORE_INDEX}


def _write_classes(path, values, **extra):
    with rasterio.open(path, "w", driver="GTiff", width=4, height=1, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 10), **extra
                       ) as dst:
        dst.write(np.array([values], dtype=np.uint8), 1)
        dst.write_colormap(1, {0: (0, 0, 0, 255), 1: (0, 0, 255, 255), 2: (0, 128, 0, 255)})


def test_category_names_and_colours(tmp_path):
    path = tmp_path / "lc.tif"
    _write_classes(path, [0, 1, 2, 2])
    (tmp_path / "lc.tif.aux.xml").write_text(
        "<PAMDataset><PAMRasterBand band='1'><CategoryNames><Category>none</Category>"
        "<Category>water</Category><Category>forest</Category></CategoryNames>"
        "</PAMRasterBand></PAMDataset>")
    table = label_classes(open_label_raster(str(path)))
    assert table.records() == [{"id": 0, "name": "background", "color": "#000000"},
                               {"id": 1, "name": "water", "color": "#0000ff"},
                               {"id": 2, "name": "forest", "color": "#008000"}]


def test_attribute_table_names(tmp_path):
    path = tmp_path / "rat.tif"
    _write_classes(path, [0, 5, 5, 7])
    (tmp_path / "rat.tif.aux.xml").write_text(
        "<PAMDataset><PAMRasterBand band='1'><GDALRasterAttributeTable>"
        "<FieldDefn index='0'><Name>Value</Name><Type>0</Type><Usage>5</Usage></FieldDefn>"
        "<FieldDefn index='1'><Name>Class_Name</Name><Type>2</Type><Usage>2</Usage></FieldDefn>"
        "<Row index='0'><F>5</F><F>urban</F></Row><Row index='1'><F>7</F><F>crops</F></Row>"
        "</GDALRasterAttributeTable></PAMRasterBand></PAMDataset>")
    table = label_classes(open_label_raster(str(path)))
    assert [(c.id, c.name) for c in table.classes] == [(0, "background"), (5, "urban"),
                                                       (7, "crops")]


def test_values_without_a_class(tmp_path):
    path = tmp_path / "codes.tif"
    with rasterio.open(path, "w", driver="GTiff", width=2, height=1, count=1, dtype="uint16",
                       crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 10)) as dst:
        dst.write(np.array([[10, 300]], dtype=np.uint16), 1)
    raster = open_label_raster(str(path))
    with pytest.raises(InputError, match=r"codes\.tif: label value\(s\) 300 are not class ids"):
        read_label_window(raster, label_classes(raster), raster.grid)


def test_majority_class():
    mask = np.array([[1, 1, 2], [2, 2, 255], [255, 255, 255]], dtype=np.uint8)
    assert majority_class(mask) == 2
    assert majority_class(np.array([[0, 0, 3]], np.uint8)) == 0
    assert majority_class(np.array([[1, 2]], np.uint8)) == 1  # ties: the lowest id
    assert majority_class(np.full((2, 2), 255, np.uint8)) is None
