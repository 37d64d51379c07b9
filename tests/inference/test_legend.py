"""QGIS legends: GDAL category names and a raster attribute table; preview RGB bands (#17.7)."""

from __future__ import annotations

import ctypes
import glob
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geovision.cli.main import main
from geovision.errors import InputError
from geovision.geo.display import preview_bands, rgb_by_name, stretch
from geovision.inference import infer
from geovision.inference.preview import _rgb
from tests.inference.infer_helpers import CLASSES, write_scene


def _gdal() -> ctypes.CDLL:
    """The GDAL library rasterio runs on, called directly (its C API reads PAM sidecars)."""
    libs = os.path.join(os.path.dirname(rasterio.__file__), os.pardir, "rasterio.libs")
    found = glob.glob(os.path.join(libs, "libgdal*.so*"))
    if not found:
        pytest.skip("rasterio's GDAL library is not a separate file here")
    lib = ctypes.CDLL(found[0])
    lib.GDALAllRegister()
    for name, res, args in (
            ("GDALOpen", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]),
            ("GDALClose", None, [ctypes.c_void_p]),
            ("GDALGetRasterBand", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]),
            ("GDALGetMetadata", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
            ("GDALGetRasterCategoryNames", ctypes.POINTER(ctypes.c_char_p), [ctypes.c_void_p]),
            ("GDALGetDefaultRAT", ctypes.c_void_p, [ctypes.c_void_p]),
            ("GDALRATGetRowCount", ctypes.c_int, [ctypes.c_void_p]),
            ("GDALRATGetColumnCount", ctypes.c_int, [ctypes.c_void_p]),
            ("GDALRATGetNameOfCol", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]),
            ("GDALRATGetUsageOfCol", ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
            ("GDALRATGetValueAsString", ctypes.c_char_p,
             [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]),
            ("GDALRATGetTableType", ctypes.c_int, [ctypes.c_void_p])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def _legend(path: Path) -> tuple[list[str], list[str], list[int], list[list[str]], int]:
    """Category names, RAT column names, usages, rows and table type, as GDAL reads them."""
    gdal = _gdal()
    ds = gdal.GDALOpen(str(path).encode(), 0)
    assert ds
    try:
        band = gdal.GDALGetRasterBand(ds, 1)
        # GTiff loads the PAM sidecar on the first metadata request, as gdalinfo and QGIS
        # make it; GetCategoryNames alone does not trigger the load
        gdal.GDALGetMetadata(band, None)
        raw = gdal.GDALGetRasterCategoryNames(band)
        names = []
        i = 0
        while raw and raw[i] is not None:
            names.append(raw[i].decode())
            i += 1
        rat = gdal.GDALGetDefaultRAT(band)
        assert rat, "no raster attribute table"
        cols = gdal.GDALRATGetColumnCount(rat)
        columns = [gdal.GDALRATGetNameOfCol(rat, c).decode() for c in range(cols)]
        usages = [gdal.GDALRATGetUsageOfCol(rat, c) for c in range(cols)]
        rows = [[gdal.GDALRATGetValueAsString(rat, r, c).decode() for c in range(cols)]
                for r in range(gdal.GDALRATGetRowCount(rat))]
        kind = gdal.GDALRATGetTableType(rat)
    finally:
        gdal.GDALClose(ds)
    return names, columns, usages, rows, kind


def test_class_raster_has_category_names_and_an_attribute_table(tmp_path, seg_bundle):
    rng = np.random.default_rng(0)
    scene = write_scene(tmp_path / "scene.tif",
                        rng.integers(0, 255, (4, 96, 128), dtype=np.uint8))
    infer(seg_bundle, scene, tmp_path / "out", window=64, quiet=True)
    tif = tmp_path / "out" / "scene.class.tif"
    names, columns, usages, rows, kind = _legend(tif)
    assert names == [c["name"] for c in CLASSES]
    assert columns == ["value", "class", "red", "green", "blue", "alpha"]
    assert usages == [5, 2, 6, 7, 8, 9]  # GFU_MinMax, Name, Red, Green, Blue, Alpha
    assert kind == 0  # GRTT_THEMATIC
    assert rows[1] == ["1", "building", "227", "26", "28", "255"]  # #e31a1c
    assert [r[1] for r in rows] == names
    with rasterio.open(tif) as ds:  # the colour table and tags stay where they were
        assert ds.colormap(1)[1] == (227, 26, 28, 255)
        assert ds.tags(1)["class_4"] == "water"


def test_rgb_by_band_names_and_aliases():
    assert rgb_by_name(["blue", "green", "red", "nir"]) == [2, 1, 0]
    assert rgb_by_name(["B01", "B02", "B03", "B04", "B08"]) == [3, 2, 1]
    assert rgb_by_name(["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5"]) == [3, 2, 1]
    assert rgb_by_name(["band1", "band2", "band3"]) is None
    assert preview_bands(["a", "b", "c", "d"], None) == [0, 1, 2]
    assert preview_bands(["a"], None) == [0, 0, 0]
    assert preview_bands(["blue", "green", "red", "nir"], (4, 3, 2)) == [3, 2, 1]
    with pytest.raises(InputError) as err:
        preview_bands(["blue", "green", "red"], (5, 2, 1))
    assert str(err.value) == "--preview-bands: 5,2,1 must be three bands among 1..3 (1 blue, " \
                             "2 green, 3 red)"


def test_preview_draws_the_bands_named_red_green_blue(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 1000, (5, 40, 60), dtype=np.uint16)
    path = write_scene(tmp_path / "s2.tif", pixels)
    with rasterio.open(path, "r+") as ds:
        for i, name in enumerate(["B01", "B02", "B03", "B04", "B08"], start=1):
            ds.set_band_description(i, name)
    rgb = _rgb(str(path), None, (40, 60))
    for channel, band in enumerate((3, 2, 1)):  # B04, B03, B02
        np.testing.assert_allclose(rgb[..., channel], stretch(pixels[band].astype(np.float64)))
    nir = _rgb(str(path), (5, 5, 5), (40, 60))
    np.testing.assert_allclose(nir[..., 0], stretch(pixels[4].astype(np.float64)))


def test_infer_preview_bands_on_the_command_line(tmp_path, seg_bundle, capsys):
    rng = np.random.default_rng(2)
    scene = write_scene(tmp_path / "scene.tif", rng.integers(0, 255, (4, 64, 64), np.uint8))
    assert main(["-q", "infer", str(seg_bundle), str(scene), "-o", str(tmp_path / "a"),
                 "--preview", "--preview-bands", "3,2,1"]) == 0
    assert (tmp_path / "a" / "scene.preview.png").stat().st_size > 0
    assert main(["-q", "infer", str(seg_bundle), str(scene), "-o", str(tmp_path / "b"),
                 "--preview", "--preview-bands", "3,2"]) == 2
    assert "--preview-bands" in capsys.readouterr().err
