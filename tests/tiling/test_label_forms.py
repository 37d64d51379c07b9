"""Issue 11, tile side: numeric class fields, class maps, raster labels, points and lines,
areas of interest and partial labels, through ``geovision tile`` and ``tile()``.

Every mask is compared with an independent computation on the whole raster (one rasterize,
one reprojection, one AOI mask), pixel for pixel.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import zarr
from affine import Affine
from rasterio.enums import Resampling
from rasterio.features import geometry_mask, rasterize
from rasterio.warp import reproject, transform_bounds

from geovision.cli.main import main
from geovision.errors import InputError
from geovision.tiling import TileOptions, tile
from geovision.tiling.info import format_summary

SIZE = 64


@pytest.fixture(scope="module")
def scene(sample_utm, tmp_path_factory):
    """The UTM sample with its labels given numeric codes 2 and 10 (and 7 on a few)."""
    root = tmp_path_factory.mktemp("forms")
    frame = gpd.read_file(sample_utm.labels)
    codes = np.where(np.arange(len(frame)) % 2 == 0, 2, 10)
    codes[::7] = 7
    frame["code"] = codes
    frame[frame.code != 7].to_file(root / "codes.gpkg")
    frame.to_file(root / "codes7.gpkg")
    with rasterio.open(sample_utm.rasters[0]) as ds:
        grid = {"crs": ds.crs, "transform": ds.transform, "shape": ds.shape,
                "valid": ds.dataset_mask() > 0}
    return {"root": root, "raster": sample_utm.rasters[0], "frame": frame, "grid": grid}


def _burned(frame, values, grid, fill=0):
    local = frame.to_crs(grid["crs"].to_wkt())
    return rasterize(zip(local.geometry, list(values), strict=True), out_shape=grid["shape"],
                     transform=grid["transform"], fill=fill, dtype="uint8")


def _tiles(store):
    g = zarr.open_group(str(store), mode="r")
    return g, list(zip(g["row"][:].tolist(), g["col"][:].tolist(), strict=True))


def _assert_masks(store, expected, edges=None, grid=None, size=SIZE):
    """Tile masks equal ``expected``; with ``edges`` (shapes), a pixel may differ only when its
    centre lies within 1/50 pixel of an edge (GDAL's scanlines on a block and on the whole
    raster round such pixels differently)."""
    g, where = _tiles(store)
    assert len(where) > 0
    masks = g["mask"][:]
    for i, (r, c) in enumerate(where):
        want = expected[r:r + size, c:c + size]
        if edges is not None:
            rows, cols = np.nonzero(masks[i] != want)
            xs, ys = grid["transform"] @ (cols + c + 0.5, rows + r + 0.5)
            lines = shapely.boundary(np.asarray(edges))
            for x, y in zip(xs, ys, strict=True):
                near = shapely.distance(lines, shapely.Point(x, y)).min()
                assert near < grid["transform"].a / 50, (r, c, x, y, near)
            want = np.where(masks[i] != want, masks[i], want)
        np.testing.assert_array_equal(masks[i], want)


def _cli(*args):
    return main(["tile", *map(str, args), "--tile-size", str(SIZE), "-q"])


def test_numeric_codes_sort_numerically(scene, tmp_path):
    out = tmp_path / "n.zarr"
    assert _cli(scene["raster"], scene["root"] / "codes.gpkg", "--class-field", "code",
                "-o", out) == 0
    g, _ = _tiles(out)
    assert [(c["id"], c["name"]) for c in g.attrs["classes"]] == [
        (0, "background"), (1, "2"), (2, "10")]
    frame = scene["frame"][scene["frame"].code != 7]
    expected = _burned(frame, frame.code.map({2: 1, 10: 2}), scene["grid"])
    expected[~scene["grid"]["valid"]] = 255
    _assert_masks(out, expected)


@pytest.mark.parametrize(("unlisted", "fill_7"), [("drop", None), ("background", 0),
                                                  ("ignore", 255)])
def test_class_map_keeps_codes_as_ids(scene, tmp_path, unlisted, fill_7):
    cmap = tmp_path / "map.yaml"
    cmap.write_text(f"unlisted: {unlisted}\nclasses:\n  2: {{name: low}}\n"
                    "  10: {name: high, color: '#00ff00'}\n")
    out = tmp_path / "m.zarr"
    assert _cli(scene["raster"], scene["root"] / "codes7.gpkg", "--class-field", "code",
                "--class-map", cmap, "-o", out) == 0
    g, _ = _tiles(out)
    assert g.attrs["classes"] == [
        {"id": 0, "name": "background", "color": "#000000"},
        {"id": 2, "name": "low", "color": "#ff7f0e"},
        {"id": 10, "name": "high", "color": "#00ff00"}]
    frame = scene["frame"]
    sevens = int((frame.code == 7).sum())
    kept = frame if fill_7 is not None else frame[frame.code != 7]
    values = kept.code.replace({7: fill_7}) if fill_7 is not None else kept.code
    expected = _burned(kept, values, scene["grid"])
    expected[~scene["grid"]["valid"]] = 255
    _assert_masks(out, expected)
    labels = g.attrs["labels"]
    assert labels["dropped"] == ({"unlisted_value": sevens} if unlisted == "drop" else {})
    assert labels["class_map"]["unlisted"] == unlisted
    pixels = np.bincount(g["mask"][:].ravel(), minlength=256)
    assert g.attrs["counts"]["class_pixels"] == pixels[:11].tolist()


def _label_raster(scene, path, *, crs="EPSG:3035", res=7.0, nodata_rows=20):
    """The codes rasterized on another CRS and resolution, nodata 99 on a top strip."""
    frame = scene["frame"][scene["frame"].code != 7].to_crs(crs)
    g = scene["grid"]
    left, bottom, right, top = transform_bounds(
        g["crs"], crs, *rasterio.transform.array_bounds(*g["shape"], g["transform"]))
    # covers the raster but its left 60 m: there, pixels lie outside the label raster
    t = Affine(res, 0, left + 60, 0, -res, top + 30)
    shape = (int((top - bottom) / res) + 12, int((right - left - 60) / res) + 12)
    arr = rasterize(zip(frame.geometry, frame.code, strict=True), out_shape=shape,
                    transform=t, fill=0, dtype="uint8")
    arr[:nodata_rows] = 99
    with rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=1,
                       dtype="uint8", crs=crs, transform=t, nodata=99) as dst:
        dst.write(arr, 1)
    return path


def _warped(path, grid, fill):
    """The whole label raster warped onto the image grid by nearest neighbour."""
    with rasterio.open(path) as src:
        data = src.read(1)
        values = np.zeros(grid["shape"], np.uint8)
        covered = np.zeros(grid["shape"], np.uint8)
        for arr, out in ((data, values), (np.ones_like(data), covered)):
            reproject(arr, out, src_transform=src.transform, src_crs=src.crs, src_nodata=None,
                      dst_transform=grid["transform"], dst_crs=grid["crs"], dst_nodata=None,
                      resampling=Resampling.nearest, tolerance=0.0)
    ids = np.where(covered == 1, values, fill).astype(np.uint8)
    ids[(covered == 1) & (values == 99)] = 255
    return ids


def test_raster_labels_reprojected_by_nearest(scene, tmp_path):
    lab = _label_raster(scene, tmp_path / "lab.tif")
    out = tmp_path / "r.zarr"
    assert _cli(scene["raster"], lab, "-o", out) == 0
    g, _ = _tiles(out)
    assert [(c["id"], c["name"]) for c in g.attrs["classes"]] == [
        (0, "background"), (2, "2"), (10, "10")]
    expected = _warped(lab, scene["grid"], fill=0)
    expected[~scene["grid"]["valid"]] = 255
    _assert_masks(out, expected)
    assert g.attrs["labels"]["form"] == "raster"
    assert f"labels     {lab} (raster " in format_summary(out)
    # the label raster agrees with the polygons it came from, but on their edges
    frame = scene["frame"][scene["frame"].code != 7]
    polys = _burned(frame, frame.code, scene["grid"])
    both = (expected != 255) & scene["grid"]["valid"]
    both[:, :6] = False  # left of the label raster: background by fill
    assert (expected[both] == polys[both]).mean() > 0.97


def test_raster_labels_classification_and_unlabeled_ignore(scene, tmp_path):
    lab = _label_raster(scene, tmp_path / "lab.tif")
    out = tmp_path / "c.zarr"
    tile([scene["raster"]], lab, out, TileOptions(task="classification", tile_size=SIZE,
                                                  unlabeled="ignore"), quiet=True)
    g, where = _tiles(out)
    expected = _warped(lab, scene["grid"], fill=255)
    expected[~scene["grid"]["valid"]] = 255
    for i, (r, c) in enumerate(where):
        counts = np.bincount(expected[r:r + SIZE, c:c + SIZE].ravel(), minlength=256)[:11]
        assert g["label"][i] == np.argmax(counts)


def test_raster_value_outside_class_ids_is_refused(scene, tmp_path, capsys):
    path = tmp_path / "big.tif"
    g = scene["grid"]
    with rasterio.open(path, "w", driver="GTiff", width=g["shape"][1], height=g["shape"][0],
                       count=1, dtype="uint16", crs=g["crs"], transform=g["transform"]) as dst:
        dst.write(np.full(g["shape"], 300, np.uint16), 1)
    assert _cli(scene["raster"], path, "-o", tmp_path / "x.zarr") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"geovision: error: {path}: label value(s) 300 are not class ids (a "
                   "raster's values are its class ids 1..254, 0 background, when no class "
                   "map is given; 255 is ignore_index); give --class-map FILE mapping the "
                   "values to ids, or set the raster's nodata"]
    assert not (tmp_path / "x.zarr").exists()
    assert not (tmp_path / "x.zarr.partial").exists()


def _points(scene, tmp_path):
    frame = scene["frame"][scene["frame"].code != 7].to_crs(scene["grid"]["crs"].to_wkt())
    pts = frame.copy()
    pts["geometry"] = frame.geometry.centroid
    path = tmp_path / "points.gpkg"
    pts.to_crs("EPSG:4326").to_file(path)
    # the answer from the file as written (its coordinates went through EPSG:4326)
    return path, gpd.read_file(path).to_crs(scene["grid"]["crs"].to_wkt())


def test_points_need_a_buffer(scene, tmp_path, capsys):
    path, pts = _points(scene, tmp_path)
    assert _cli(scene["raster"], path, "--class-field", "code", "-o", tmp_path / "p.zarr") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"geovision: error: {path}: holds {len(pts)} points, which cover no area; give "
        "--buffer PX to turn points into discs and lines into corridors of PX pixels (boxes "
        "of side 2*PX for detection), or leave them out of the file"]


def test_points_and_lines_buffered_in_pixels(scene, tmp_path):
    path, pts = _points(scene, tmp_path)
    out = tmp_path / "p.zarr"
    assert _cli(scene["raster"], path, "--class-field", "code", "--buffer", 2.7, "-o", out) == 0
    res = scene["grid"]["transform"].a  # square pixels
    discs = pts.copy()
    discs["geometry"] = pts.geometry.buffer(2.7 * res)
    expected = _burned(discs, discs.code.map({2: 1, 10: 2}), scene["grid"])
    expected[~scene["grid"]["valid"]] = 255
    _assert_masks(out, expected, edges=discs.geometry.values, grid=scene["grid"])

    lines = scene["frame"][scene["frame"].code != 7].to_crs(scene["grid"]["crs"].to_wkt())
    lines["geometry"] = lines.geometry.boundary
    lpath = tmp_path / "lines.gpkg"
    lines.to_file(lpath)
    out = tmp_path / "l.zarr"
    assert _cli(scene["raster"], lpath, "--class-field", "code", "--buffer", 1.3,
                "-o", out) == 0
    corridors = lines.copy()
    corridors["geometry"] = lines.geometry.buffer(1.3 * res)
    expected = _burned(corridors, corridors.code.map({2: 1, 10: 2}), scene["grid"])
    expected[~scene["grid"]["valid"]] = 255
    _assert_masks(out, expected, edges=corridors.geometry.values, grid=scene["grid"])


def test_point_boxes_for_detection(scene, tmp_path):
    path, pts = _points(scene, tmp_path)
    out = tmp_path / "d.zarr"
    tile([scene["raster"]], path, out, TileOptions(task="detection", class_field="code",
                                                   buffer=4, tile_size=SIZE, min_valid=0.0),
         quiet=True)
    g, where = _tiles(out)
    inv = ~scene["grid"]["transform"]
    cols, rows = inv @ (pts.geometry.x.to_numpy(), pts.geometry.y.to_numpy())
    ids = pts.code.map({2: 1, 10: 2}).to_numpy()
    want = []
    for i, (r, c) in enumerate(where):
        for x, y, k in zip(cols - c, rows - r, ids, strict=True):
            box = np.clip([x - 4, y - 4, x + 4, y + 4], 0, SIZE)
            w, h = box[2] - box[0], box[3] - box[1]
            if w >= 1 and h >= 1 and w * h / 64 >= 0.5:
                want.append((i, *np.round(box, 3), k))
    got = [(int(t), *np.round(b.astype(np.float64), 3), int(k)) for b, k, t in zip(
        g["boxes"][:], g["box_label"][:], g["box_tile"][:], strict=True)]
    assert sorted(got) == sorted(want) and len(got) > 10


@pytest.fixture(scope="module")
def aoi(scene, tmp_path_factory):
    g = scene["grid"]
    left, bottom, right, top = rasterio.transform.array_bounds(*g["shape"], g["transform"])
    area = shapely.box(left + 600, bottom + 500, right - 900, top - 400)
    path = tmp_path_factory.mktemp("aoi") / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[area], crs=g["crs"].to_wkt()).to_crs("EPSG:4326").to_file(path)
    inside = geometry_mask(
        gpd.read_file(path).to_crs(g["crs"].to_wkt()).geometry, out_shape=g["shape"],
        transform=g["transform"], invert=True)
    return path, inside


@pytest.mark.parametrize("unlabeled", ["background", "ignore"])
def test_aoi_and_unlabeled(scene, aoi, tmp_path, unlabeled):
    path, inside = aoi
    out = tmp_path / "a.zarr"
    assert _cli(scene["raster"], scene["root"] / "codes.gpkg", "--class-field", "code",
                "--aoi", path, "--unlabeled", unlabeled, "--min-valid", 0.3, "-o", out) == 0
    frame = scene["frame"][scene["frame"].code != 7]
    fill = 0 if unlabeled == "background" else 255
    expected = _burned(frame, frame.code.map({2: 1, 10: 2}), scene["grid"], fill=fill)
    use = scene["grid"]["valid"] & inside
    expected[~use] = 255
    _assert_masks(out, expected)
    g, where = _tiles(out)
    h, w = scene["grid"]["shape"]
    want = [(r, c) for r in range(0, h - SIZE + 1, SIZE) for c in range(0, w - SIZE + 1, SIZE)
            if use[r:r + SIZE, c:c + SIZE].mean() >= 0.3]
    assert where == want
    np.testing.assert_allclose(g["valid"][:], [use[r:r + SIZE, c:c + SIZE].mean()
                                               for r, c in where], rtol=1e-6)
    labels = g.attrs["labels"]
    assert labels["unlabeled"] == unlabeled and labels["aoi"]["path"] == str(path)
    shown = format_summary(out).splitlines()[-1].strip()
    assert shown == (f"aoi {path}; unlabeled pixels ignored" if unlabeled == "ignore"
                     else f"aoi {path}")


def test_detection_keeps_tiles_inside_the_aoi(scene, aoi, tmp_path):
    path, inside = aoi
    out = tmp_path / "d.zarr"
    tile([scene["raster"]], scene["root"] / "codes.gpkg", out,
         TileOptions(task="detection", class_field="code", aoi=str(path), tile_size=SIZE,
                     min_valid=0.0), quiet=True)
    _, where = _tiles(out)
    h, w = scene["grid"]["shape"]
    valid = scene["grid"]["valid"]
    want = [(r, c) for r in range(0, h - SIZE + 1, SIZE) for c in range(0, w - SIZE + 1, SIZE)
            if inside[r:r + SIZE, c:c + SIZE].all() and valid[r:r + SIZE, c:c + SIZE].any()]
    assert where == want and len(want) > 0


def test_value_named_background_and_too_many_classes(scene, tmp_path, capsys):
    frame = scene["frame"].copy()
    frame["name"] = np.where(np.arange(len(frame)) % 2 == 0, "background", "roof")
    path = tmp_path / "bg.gpkg"
    frame.to_file(path)
    assert _cli(scene["raster"], path, "--class-field", "name", "-o", tmp_path / "x.zarr") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"geovision: error: {path}: field 'name': the value 'background' is the name of class "
        "0 (pixels no label covers); rename it in the file, or give --class-map FILE with "
        "'background: background' to make those features background"]
    many = gpd.GeoDataFrame({"code": np.arange(300)}, geometry=[
        shapely.box(x, 0, x + 1, 1) for x in range(300)], crs="EPSG:32633")
    path = tmp_path / "many.gpkg"
    many.to_file(path)
    with pytest.raises(InputError) as err:
        tile([scene["raster"]], path, tmp_path / "y.zarr",
             TileOptions(class_field="code", tile_size=SIZE), quiet=True)
    assert str(err.value) == (
        f"{path}: field 'code': 300 distinct values; at most 254 classes fit in the class "
        "raster (id 0 is background, 255 is ignore_index); merge classes with --class-map "
        "FILE (several values may share an id)")


def test_class_map_id_colliding_with_ignore_index(scene, tmp_path, capsys):
    cmap = tmp_path / "bad.yaml"
    cmap.write_text("classes:\n  2: {id: 255, name: low}\n")
    assert _cli(scene["raster"], scene["root"] / "codes.gpkg", "--class-field", "code",
                "--class-map", cmap, "-o", tmp_path / "x.zarr") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"geovision: error: {cmap}: value '2'")
    assert "255" in err[0]


def test_classification_leaves_out_tiles_without_a_labelled_pixel(scene, aoi, tmp_path):
    path, inside = aoi
    out = tmp_path / "c.zarr"
    tile([scene["raster"]], scene["root"] / "codes.gpkg", out,
         TileOptions(task="classification", class_field="code", aoi=str(path),
                     unlabeled="ignore", tile_size=SIZE, min_valid=0.0), quiet=True)
    frame = scene["frame"][scene["frame"].code != 7]
    expected = _burned(frame, frame.code.map({2: 1, 10: 2}), scene["grid"], fill=255)
    use = scene["grid"]["valid"] & inside
    expected[~use] = 255
    g, where = _tiles(out)
    h, w = scene["grid"]["shape"]
    want = [(r, c) for r in range(0, h - SIZE + 1, SIZE) for c in range(0, w - SIZE + 1, SIZE)
            if use[r:r + SIZE, c:c + SIZE].any() and (expected[r:r + SIZE, c:c + SIZE]
                                                       != 255).any()]
    assert where == want
    some_use_no_label = [(r, c) for r in range(0, h - SIZE + 1, SIZE)
                         for c in range(0, w - SIZE + 1, SIZE)
                         if use[r:r + SIZE, c:c + SIZE].any() and (r, c) not in want]
    assert some_use_no_label  # the rule was exercised
    for i, (r, c) in enumerate(where):
        counts = np.bincount(expected[r:r + SIZE, c:c + SIZE].ravel(), minlength=256)[:3]
        assert g["label"][i] == np.argmax(counts)


def test_luxembourg_districts_as_a_raster_label_map_in_another_crs(luxembourg, tmp_path):
    """Real data: the district polygons rasterized in EPSG:3035 (250 m), tiled on the
    EPSG:4326 elevation raster, equal the whole map warped by nearest neighbour and agree with
    the polygons they came from."""
    lux = gpd.read_file(luxembourg / "lux.shp")
    names = sorted(set(lux.NAME_1))
    lux["code"] = [10 * (names.index(n) + 1) for n in lux.NAME_1]
    local = lux.to_crs("EPSG:3035")
    left, bottom, right, top = local.total_bounds
    t = Affine(250.0, 0, left - 1000, 0, -250.0, top + 1000)
    shape = (int((top - bottom) / 250) + 9, int((right - left) / 250) + 9)
    arr = rasterize(zip(local.geometry, local.code, strict=True), out_shape=shape, transform=t,
                    fill=0, dtype="uint8")
    lab = tmp_path / "districts.tif"
    with rasterio.open(lab, "w", driver="GTiff", width=shape[1], height=shape[0], count=1,
                       dtype="uint8", crs="EPSG:3035", transform=t) as dst:
        dst.write(arr, 1)
    cmap = tmp_path / "districts.yaml"
    cmap.write_text("classes:\n  0: background\n" + "".join(
        f"  {10 * (i + 1)}: {{name: {n}}}\n" for i, n in enumerate(names)))
    raster = luxembourg / "elev.tif"
    out = tmp_path / "lux.zarr"
    assert main(["tile", str(raster), str(lab), "--class-map", str(cmap), "--tile-size", "16",
                 "--min-valid", "0", "-o", str(out), "-q"]) == 0
    g, where = _tiles(out)
    assert [(c["id"], c["name"]) for c in g.attrs["classes"]] == [
        (0, "background"), (10, "Diekirch"), (20, "Grevenmacher"), (30, "Luxembourg")]
    with rasterio.open(raster) as ds:
        grid = {"crs": ds.crs, "transform": ds.transform, "shape": ds.shape,
                "valid": ds.dataset_mask() > 0}
    expected = _warped(lab, grid, fill=0)
    expected[~grid["valid"]] = 255
    masks = g["mask"][:]
    for i, (r, c) in enumerate(where):
        np.testing.assert_array_equal(masks[i], expected[r:r + 16, c:c + 16])
    polys = _burned(lux, lux.code, grid)
    inner = grid["valid"]
    assert (expected[inner] == polys[inner]).mean() > 0.9


def test_north_carolina_centroids_as_points(tmp_path):
    """Real data: the 100 county centroids (EPSG:4267) as buffered points on a UTM raster."""
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "north-carolina" / "nc.gpkg"
    if not path.exists():
        pytest.skip(f"shared sample data not found at {path}")
    nc = gpd.read_file(path)
    utm = nc.to_crs("EPSG:32617")
    pts = utm.copy()
    pts["geometry"] = utm.geometry.representative_point()
    pts = pts[["NAME", "geometry"]].to_crs(nc.crs)
    points = tmp_path / "centroids.gpkg"
    pts.to_file(points)
    left, bottom, right, top = utm.total_bounds
    res = 5000.0
    t = Affine(res, 0, left, 0, -res, top)
    shape = (int((top - bottom) / res) + 1, int((right - left) / res) + 1)
    raster = tmp_path / "nc.tif"
    with rasterio.open(raster, "w", driver="GTiff", width=shape[1], height=shape[0], count=1,
                       dtype="uint8", crs="EPSG:32617", transform=t) as dst:
        dst.write(np.full(shape, 7, np.uint8), 1)
    out = tmp_path / "nc.zarr"
    tile([str(raster)], points, out, TileOptions(buffer=2, tile_size=16, min_valid=0.0),
         quiet=True)
    grid = {"crs": rasterio.crs.CRS.from_epsg(32617), "transform": t, "shape": shape}
    back = gpd.read_file(points).to_crs("EPSG:32617")
    discs = back.copy()
    discs["geometry"] = back.geometry.buffer(2 * res)
    expected = _burned(discs, [1] * len(discs), grid)
    _assert_masks(out, expected, edges=discs.geometry.values, grid=grid, size=16)
    g, _ = _tiles(out)
    assert g.attrs["labels"]["buffer"] == 2 and g.attrs["labels"]["features"] == 100


def test_raster_values_a_class_map_drops_are_ignored_and_counted(scene, tmp_path):
    lab = _label_raster(scene, tmp_path / "lab.tif")
    cmap = tmp_path / "only2.yaml"
    cmap.write_text("classes:\n  0: background\n  2: {name: low}\n")
    out = tmp_path / "d.zarr"
    tile([scene["raster"]], lab, out, TileOptions(class_map=str(cmap), tile_size=SIZE),
         quiet=True)
    g, where = _tiles(out)
    warped = _warped(lab, scene["grid"], fill=0)
    valid = scene["grid"]["valid"]
    expected = np.where(warped == 10, 255, warped).astype(np.uint8)
    expected[~valid] = 255
    _assert_masks(out, expected)
    dropped = sum(int(((warped == 10) & valid)[r:r + SIZE, c:c + SIZE].sum()) for r, c in where)
    assert dropped > 0
    assert g.attrs["labels"]["dropped"] == {"unlisted_value_pixels": dropped}
    assert [(c["id"], c["name"]) for c in g.attrs["classes"]] == [(0, "background"),
                                                                  (2, "low")]
