import datetime as dt
import json
import pickle
import re
import subprocess
import sys

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject

from geovision.errors import InputError
from geovision.geo.paths import fingerprint
from geovision.geo.scenes import resolve_scenes, short_names, stack_scene
from geovision.geo.stac import default_assets, read_stac

CRS = "EPSG:32633"
ORIGIN = (500_000.0, 5_300_000.0)
FINE = 10.0
SIZE = 64  # pixels of a 10 m band; the 20 m band has SIZE // 2


def _band(path, res, size, seed, nodata=0, dtype="uint16", corner=True):
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 10_000, (size, size)).astype(dtype)
    if corner:
        data[: size // 8, : size // 4] = nodata  # a nodata corner
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1,
                       dtype=dtype, crs=CRS, nodata=nodata, tiled=True, blockxsize=16,
                       blockysize=16, transform=Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1])
                       ) as dst:
        dst.write(data, 1)
    return path


def _item(folder, name="S2_TEST", bands=("B02", "B03", "B04", "B08"), half=("B08",),
          corner=True):
    folder.mkdir(parents=True, exist_ok=True)
    item = pystac.Item(id=name, geometry=None, bbox=None, datetime=dt.datetime(2024, 5, 1),
                       properties={})
    for i, b in enumerate(bands):
        coarse = b in half
        _band(folder / f"{b}.tif", FINE * (2 if coarse else 1), SIZE // (2 if coarse else 1),
              seed=i, corner=corner)
        item.add_asset(b, pystac.Asset(href=f"./{b}.tif", media_type=pystac.MediaType.COG,
                                       roles=["data", "reflectance"]))
    item.add_asset("thumbnail", pystac.Asset(href="./thumb.png", media_type="image/png",
                                             roles=["thumbnail"]))
    item.add_asset("metadata", pystac.Asset(href="./meta.xml", media_type="application/xml",
                                            roles=["metadata"]))
    path = folder / f"{name}.json"
    path.write_text(json.dumps(item.to_dict(include_self_link=False)))
    return path


def _reference(folder, bands, resampling, res=FINE, size=SIZE):
    """The same bands resampled by GDAL's warper onto the grid, as one multi-band GeoTIFF."""
    out = np.zeros((len(bands), size, size), dtype="uint16")
    dst_tr = Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1])
    for i, b in enumerate(bands):
        with rasterio.open(folder / f"{b}.tif") as src:
            reproject(rasterio.band(src, 1), out[i], dst_transform=dst_tr, dst_crs=CRS,
                      dst_nodata=0, resampling=Resampling[resampling])
    path = folder / f"reference-{resampling}-{int(res)}.tif"
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=len(bands),
                       dtype="uint16", crs=CRS, transform=dst_tr, nodata=0) as dst:
        dst.write(out)
    return path


def _read(path, window=None):
    with rasterio.open(path) as ds:
        return ds.read(window=window)


@pytest.mark.parametrize("resampling", ["nearest", "bilinear", "average"])
def test_stac_item_opens_to_the_pixels_of_gdal_multiband_file(tmp_path, resampling):
    item = _item(tmp_path / "item", corner=False)
    order = ["B04", "B03", "B02", "B08"]
    (scene,) = resolve_scenes([item], assets=order, resampling=resampling)
    assert scene.kind == "stac" and scene.name == "S2_TEST" and scene.is_vrt
    assert scene.band_names == tuple(order) and scene.bands == (1, 2, 3, 4)
    assert scene.grid.shape == (SIZE, SIZE) and scene.grid.res == (FINE, FINE)
    assert scene.grid.transform == Affine(FINE, 0, ORIGIN[0], 0, -FINE, ORIGIN[1])
    reference = _reference(tmp_path / "item", order, resampling)
    got = _read(scene.path)
    assert np.array_equal(got, _read(reference))
    with rasterio.open(scene.path) as ds:
        assert ds.descriptions == tuple(order) and ds.nodata == 0 and ds.crs == CRS
        window = rasterio.windows.Window(13, 27, 31, 22)  # odd offsets: resampled edges
        assert np.array_equal(ds.read(window=window), got[:, 27:49, 13:44])


def test_nodata_edges(tmp_path):
    # With nodata in the coarse band, nearest and average still equal GDAL's warper. Bilinear
    # equals GDAL's RasterIO resampling (what a VRT reads through); GDAL's warper weighs
    # nodata neighbours differently, so the two differ on the one-pixel fringe along a nodata
    # edge (RasterIO gives a value where the warper gives nodata), nowhere else.
    item = _item(tmp_path / "item")
    for resampling in ("nearest", "average"):
        (scene,) = resolve_scenes([item], assets=["B08"], resolution=FINE,
                                  resampling=resampling)
        reference = _reference(tmp_path / "item", ["B08"], resampling)
        assert np.array_equal(_read(scene.path), _read(reference))
    (scene,) = resolve_scenes([item], assets=["B08"], resolution=FINE, resampling="bilinear")
    got = _read(scene.path)[0]
    with rasterio.open(tmp_path / "item" / "B08.tif") as src:
        rasterio_read = src.read(1, out_shape=(SIZE, SIZE), resampling=Resampling.bilinear)
    assert np.array_equal(got, rasterio_read)
    warped = _read(_reference(tmp_path / "item", ["B08"], "bilinear"))[0]
    differ = got != warped
    fringe = np.zeros_like(differ)
    # The coarse corner covers fine rows 0..7 and columns 0..15: the fringe is the pixels
    # next to its edges (bilinear kernels that reach into it).
    fringe[:9, 15:17] = True
    fringe[7:9, :17] = True
    assert differ.any() and not differ[~fringe].any()


def test_cubic_matches_gdal_rasterio_resampling(tmp_path):
    # GDAL's warper and its RasterIO use different cubic kernels when upsampling; the VRT is
    # read through RasterIO, so it equals rasterio's resampled read exactly.
    item = _item(tmp_path / "item")
    (scene,) = resolve_scenes([item], assets=["B08"], resampling="cubic", resolution=FINE)
    with rasterio.open(tmp_path / "item" / "B08.tif") as src:
        expected = src.read(1, out_shape=(SIZE, SIZE), resampling=Resampling.cubic)
    got = _read(scene.path)[0]
    assert np.array_equal(got, expected)
    rng = np.random.default_rng(0)
    with rasterio.open(scene.path) as ds:
        for _ in range(20):  # windows agree with the full read (tiles and inference agree)
            r, c = rng.integers(0, SIZE - 2, 2)
            h, w = rng.integers(1, SIZE - max(r, c), 2)
            window = rasterio.windows.Window(c, r, w, h)
            assert np.array_equal(ds.read(1, window=window), got[r:r + h, c:c + w])


def test_average_at_a_non_integer_ratio_warns(tmp_path, caplog):
    _band(tmp_path / "a.tif", 10, 30, 0)
    with caplog.at_level("WARNING"):
        stack_scene([str(tmp_path / "a.tif")], resolution=15, resampling="average")
    assert "band a is averaged at a ratio of 1.5 between resolutions" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        stack_scene([str(tmp_path / "a.tif")], resolution=20, resampling="average")
        stack_scene([str(tmp_path / "a.tif")], resolution=15, resampling="bilinear")
    assert not caplog.text
    with pytest.raises(InputError, match="--resampling: 'lanczos' is not a choice; choose one "
                                         "of nearest, bilinear, cubic, average"):
        stack_scene([str(tmp_path / "a.tif")], resampling="lanczos")


def test_coarser_resolution_averages(tmp_path):
    item = _item(tmp_path / "item", corner=False)
    order = ["B02", "B08"]
    (scene,) = resolve_scenes([item], assets=order, resolution=20, resampling="average")
    assert scene.grid.shape == (SIZE // 2, SIZE // 2) and scene.grid.res == (20.0, 20.0)
    got = _read(scene.path)
    assert np.array_equal(got[1], _read(tmp_path / "item" / "B08.tif")[0])  # on its own grid
    fine = _read(tmp_path / "item" / "B02.tif")[0]
    with rasterio.open(tmp_path / "item" / "B02.tif") as src:
        expected = src.read(1, out_shape=(SIZE // 2, SIZE // 2), resampling=Resampling.average)
    assert np.array_equal(got[0], expected)  # GDAL's average, as rasterio reads it
    # ... which is the mean of each 2x2 block, rounded (GDAL's warper rounds halves the
    # other way in a few pixels; both are within 0.5 of the mean).
    means = fine.reshape(SIZE // 2, 2, SIZE // 2, 2).mean(axis=(1, 3))
    assert np.abs(got[0] - means).max() <= 0.5


def test_default_assets_are_the_data_rasters(tmp_path):
    item = _item(tmp_path / "item")
    (stac,) = read_stac(str(item))
    assert default_assets(stac) == ["B02", "B03", "B04", "B08"]
    (scene,) = resolve_scenes([item])
    assert scene.band_names == ("B02", "B03", "B04", "B08")
    assert scene.files == tuple(str(tmp_path / "item" / f"{b}.tif") for b in scene.band_names)


def test_unknown_asset_lists_the_assets(tmp_path):
    item = _item(tmp_path / "item")
    with pytest.raises(InputError, match=re.escape(
            f"{item}: item S2_TEST has no asset 'B4' (did you mean 'B04'?); assets are: B02, "
            "B03, B04, B08, thumbnail, metadata (use --assets)")):
        resolve_scenes([item], assets=["B4"])


def test_item_collections_and_folders(tmp_path):
    folder = tmp_path / "items"
    one = json.loads(_item(folder, "A").read_text())
    two = json.loads(_item(folder, "B").read_text())
    scenes = resolve_scenes([folder])  # item JSONs found: the band files are their assets
    assert [s.name for s in scenes] == ["A", "B"]
    collection = tmp_path / "items" / "collection.geojson.json"
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": [one, two]}))
    scenes = resolve_scenes([collection], assets=["B02"])
    assert [(s.name, s.band_names) for s in scenes] == [("A", ("B02",)), ("B", ("B02",))]


def test_stack_of_band_files_equals_the_item(tmp_path):
    item = _item(tmp_path / "S2_scene")
    folder = tmp_path / "S2_scene"
    files = [str(folder / f"{b}.tif") for b in ("B04", "B03", "B02", "B08")]
    (listed,) = resolve_scenes([files], resampling="bilinear")
    (stac,) = resolve_scenes([item], assets=["B04", "B03", "B02", "B08"], resampling="bilinear")
    assert listed.kind == "stack" and listed.name == "S2_scene"
    assert listed.band_names == ("B04", "B03", "B02", "B08")
    assert np.array_equal(_read(listed.path), _read(stac.path))
    bands = tmp_path / "bands"
    bands.mkdir()
    for f in files:
        (bands / f"LC08_X_SR_{f.rsplit('/', 1)[1]}").write_bytes(open(f, "rb").read())
    (whole,) = resolve_scenes([bands], stack=True)
    assert whole.name == "bands" and whole.band_names == ("B02", "B03", "B04", "B08")
    picked = stack_scene(sorted(str(p) for p in bands.iterdir()), assets=["B08", "B02"],
                         resampling="bilinear")
    assert picked.band_names == ("B08", "B02")
    assert np.array_equal(_read(picked.path), _read(stac.path)[[3, 2]])
    with pytest.raises(InputError, match="--assets: no band file is named 'B05'"):
        stack_scene([str(p) for p in bands.iterdir()], assets=["B05"])


def test_what_is_read_as_stac():
    from geovision.geo.stac import looks_like_stac

    for stac in ("item.json", "/data/items/S2.JSON", "https://h/a/item.json",
                 "https://earth-search.aws.element84.com/v1/collections/s2/items/S2B_1",
                 "https://h/stac/item"):
        assert looks_like_stac(stac), stac
    for raster in ("scene.tif", "https://h/a/scene.tif", "/vsis3/b/scene.tif"):
        assert not looks_like_stac(raster), raster
    with pytest.raises(InputError, match=re.escape(
            "s3://b/item.json: STAC documents are read from local files or http(s) URLs; give "
            "the item's https URL, or download it")):
        resolve_scenes(["s3://b/item.json"])


def test_short_names():
    assert short_names(["LC08_X_SR_B4", "LC08_X_SR_B5"]) == ["B4", "B5"]
    assert short_names(["B02", "B03"]) == ["B02", "B03"]
    assert short_names(["a_1", "a_1x"]) == ["1", "1x"]
    assert short_names(["scene"]) == ["scene"]


def test_single_file_scene(tmp_path):
    path = tmp_path / "rgb.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8",
                       crs=CRS, transform=Affine(10, 0, 0, 0, -10, 80)) as dst:
        dst.write(np.arange(192, dtype=np.uint8).reshape(3, 8, 8))
        dst.descriptions = ("red", "green", "blue")
    (scene,) = resolve_scenes([path])
    assert (scene.kind, scene.path, scene.bands, scene.band_names) == (
        "file", str(path), (1, 2, 3), ("red", "green", "blue"))
    (picked,) = resolve_scenes([path], assets=["blue", "red"])
    assert picked.bands == (3, 1) and picked.band_names == ("blue", "red")
    (coarse,) = resolve_scenes([path], resolution=20, resampling="average", assets=["green"])
    assert coarse.is_vrt and coarse.grid.shape == (4, 4)
    with rasterio.open(path) as src:
        expected = src.read(2, out_shape=(4, 4), resampling=Resampling.average)
    assert np.array_equal(_read(coarse.path)[0], expected)
    with pytest.raises(InputError, match="no band named 'nir'; its bands are red, green, blue"):
        resolve_scenes([path], assets=["nir"])


def test_assets_in_different_crs_are_refused(tmp_path):
    _band(tmp_path / "a.tif", 10, 8, 0)
    with rasterio.open(tmp_path / "b.tif", "w", driver="GTiff", width=8, height=8, count=1,
                       dtype="uint16", crs="EPSG:32634",
                       transform=Affine(10, 0, 0, 0, -10, 80)) as dst:
        dst.write(np.ones((1, 8, 8), np.uint16))
    with pytest.raises(InputError, match=r"bands are in different CRSs \(a: EPSG:32633, "
                                         r"b: EPSG:32634\); warp them to one CRS first"):
        stack_scene([str(tmp_path / "a.tif"), str(tmp_path / "b.tif")])


def test_bands_with_other_nodata_take_the_scene_nodata(tmp_path):
    _band(tmp_path / "a.tif", 10, 16, 0, nodata=0)
    _band(tmp_path / "b.tif", 10, 16, 1, nodata=65535)
    scene = stack_scene([str(tmp_path / "a.tif"), str(tmp_path / "b.tif")])
    with rasterio.open(scene.path) as ds:
        assert ds.nodatavals == (0.0, 0.0)
        data, masks = ds.read(), ds.read_masks()
    assert (data[1, :2, :4] == 0).all() and (masks[1, :2, :4] == 0).all()
    assert (data[1, 2:] > 0).all()


def test_scene_fingerprint_follows_the_item(tmp_path):
    item = _item(tmp_path / "item")
    (scene,) = resolve_scenes([item])
    assert resolve_scenes([item])[0].fingerprint() == scene.fingerprint()
    doc = json.loads(item.read_text())
    doc["properties"]["eo:cloud_cover"] = 3.5
    item.write_text(json.dumps(doc))
    assert resolve_scenes([item])[0].fingerprint() != scene.fingerprint()


def test_scene_opens_in_another_process(tmp_path):
    item = _item(tmp_path / "item")
    (scene,) = resolve_scenes([item])
    again = pickle.loads(pickle.dumps(scene))
    code = ("import sys, rasterio; ds = rasterio.open(sys.stdin.read()); "
            "print(int(ds.read().astype('int64').sum()))")
    out = subprocess.run([sys.executable, "-c", code], input=again.path, text=True,
                         capture_output=True, check=True)
    assert int(out.stdout) == int(_read(scene.path).astype(np.int64).sum())


def test_stac_item_by_url_reads_assets_over_http(http_root):
    root, base = http_root
    _item(root / "item")
    (remote,) = resolve_scenes([f"{base}/item/S2_TEST.json"], resampling="bilinear")
    assert remote.files[0] == f"/vsicurl/{base}/item/B02.tif" and remote.given.startswith(base)
    (local,) = resolve_scenes([root / "item" / "S2_TEST.json"], resampling="bilinear")
    assert np.array_equal(_read(remote.path), _read(local.path))
    assert remote.fingerprint() == remote.fingerprint()
    (tif,) = resolve_scenes([f"{base}/item/B08.tif"])
    assert tif.path == f"/vsicurl/{base}/item/B08.tif" and tif.name == "B08"
    fp = fingerprint(tif.path)
    assert set(fp) == {"path", "gdal"} and fp == fingerprint(tif.path)
