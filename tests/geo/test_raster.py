import numpy as np
import pytest
import rasterio
from affine import Affine

from geovision.errors import InputError, InputFileError
from geovision.geo.raster import find_rasters, open_raster, select_bands


def _write(path, transform=Affine(1, 0, 0, 0, -1, 10), crs="EPSG:32633", count=1, size=8):
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=count,
                       dtype="uint8", crs=crs, transform=transform) as dst:
        dst.write(np.ones((count, size, size), dtype=np.uint8))
    return path


def test_open_raster_describes(sample_utm):
    info = open_raster(sample_utm.rasters[0])
    assert (info.width, info.height, info.count, info.dtype) == (384, 256, 4, "uint16")
    assert info.crs.to_epsg() == 32633 and info.nodata == 0
    assert not info.all_valid
    d = info.describe()
    assert d["epsg"] == 32633 and d["transform"] == list(info.transform)[:6]
    assert "PROJCRS" in d["crs"]


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="missing.tif: file not found"):
        open_raster(tmp_path / "missing.tif")


def test_not_a_raster(tmp_path):
    p = tmp_path / "notes.tif"
    p.write_text("hello")
    with pytest.raises(InputFileError, match="notes.tif: not a readable raster"):
        open_raster(p)


def test_no_crs(tmp_path):
    p = _write(tmp_path / "nocrs.tif", crs=None)
    with pytest.raises(InputError, match="nocrs.tif: raster has no CRS"):
        open_raster(p)


def test_rotated(tmp_path):
    p = _write(tmp_path / "rot.tif", transform=Affine(1, 0.2, 0, 0.1, -1, 10))
    with pytest.raises(InputError, match="rot.tif: rotated or sheared"):
        open_raster(p)


def test_truncated(sample_utm, tmp_path):
    data = open(sample_utm.rasters[0], "rb").read()
    p = tmp_path / "cut.tif"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="cut.tif"):
        open_raster(p)


def test_find_rasters(tmp_path):
    _write(tmp_path / "b.tif")
    _write(tmp_path / "a.tif")
    (tmp_path / "readme.txt").write_text("x")
    assert [p.split("/")[-1] for p in find_rasters([tmp_path])] == ["a.tif", "b.tif"]
    assert len(find_rasters([str(tmp_path / "*.tif")])) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match="empty: no rasters in this directory"):
        find_rasters([empty])
    with pytest.raises(InputFileError, match="pattern matches no file"):
        find_rasters([str(tmp_path / "*.jp2")])


def test_select_bands(sample_utm):
    info = open_raster(sample_utm.rasters[0])
    assert select_bands(info, None) == [1, 2, 3, 4]
    assert select_bands(info, (4, 1)) == [4, 1]
    with pytest.raises(InputError, match=r"band\(s\) \[5\] do not exist"):
        select_bands(info, (5,))


@pytest.mark.parametrize(("dtype", "nodata", "count"), [
    ("uint8", 0, 4), ("uint8", 0, 1), ("uint16", 0, 3), ("uint8", 7, 3), ("int16", 0, 2)])
def test_valid_mask_is_gdals_nodata_mask_in_every_band(tmp_path, dtype, nodata, count):
    from rasterio.windows import Window

    from geovision.geo.raster import valid_mask

    rng = np.random.default_rng(3)
    data = rng.integers(0, 9, (count, 40, 50)).astype(dtype)  # nodata in some bands only
    path = tmp_path / "n.tif"
    with rasterio.open(path, "w", driver="GTiff", width=50, height=40, count=count,
                       dtype=dtype, nodata=nodata) as dst:
        dst.write(data)
    window = Window(3, 5, 41, 30)
    with rasterio.open(path) as ds:
        got = valid_mask(ds, list(range(1, count + 1)), window, ds.read(window=window))
        gdal = ds.read_masks(window=window).astype(bool).all(axis=0)
    assert got.dtype == bool and got.shape == (30, 41)
    np.testing.assert_array_equal(got, gdal)
    assert 0 < got.sum() < got.size
