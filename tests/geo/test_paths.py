import os
import zipfile

import numpy as np
import pytest
import rasterio
from affine import Affine

from geovision.errors import InputFileError
from geovision.geo.paths import (
    display_name,
    fingerprint,
    gdal_path,
    is_local,
    is_virtual,
    local_container,
)


@pytest.mark.parametrize(("given", "expected"), [
    ("s3://bucket/dir/scene.tif", "/vsis3/bucket/dir/scene.tif"),
    ("gs://bucket/scene.tif", "/vsigs/bucket/scene.tif"),
    ("az://container/scene.tif", "/vsiaz/container/scene.tif"),
    ("https://host/a/scene.tif?x=1", "/vsicurl/https://host/a/scene.tif?x=1"),
    ("http://host/scene.tif", "/vsicurl/http://host/scene.tif"),
    ("/vsicurl/https://host/scene.tif", "/vsicurl/https://host/scene.tif"),
    ("/vsis3/bucket/scene.tif", "/vsis3/bucket/scene.tif"),
    ("/vsizip//data/a.zip/scene.tif", "/vsizip//data/a.zip/scene.tif"),
    ("/vsizip/vsis3/bucket/a.zip/scene.tif", "/vsizip//vsis3/bucket/a.zip/scene.tif"),
    ("zip+https://host/a.zip!scene.tif", "/vsizip//vsicurl/https://host/a.zip/scene.tif"),
    ("file:///data/scene.tif", "/data/scene.tif"),
    ("<VRTDataset rasterXSize='1'/>", "<VRTDataset rasterXSize='1'/>"),
    ("NETCDF:/data/sst.nc:sst", "NETCDF:/data/sst.nc:sst"),
])
def test_gdal_path_forms(given, expected):
    assert gdal_path(given) == expected


def test_relative_paths_become_absolute_without_resolving_links(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert gdal_path("link/scene.tif") == str(tmp_path / "link" / "scene.tif")
    assert gdal_path("/vsizip/link/a.zip/s.tif") == f"/vsizip/{tmp_path}/link/a.zip/s.tif"
    assert gdal_path("/vsizip/{link/a.zip}/s.tif") == f"/vsizip/{{{tmp_path}/link/a.zip}}/s.tif"
    assert gdal_path("zip://a.zip!s.tif") == f"/vsizip/{tmp_path}/a.zip/s.tif"


def test_local_and_virtual():
    assert is_local("/data/scene.tif") and is_local("scene.tif")
    assert is_local("file:///data/scene.tif")
    for p in ("/vsizip//data/a.zip/s.tif", "s3://b/k.tif", "https://h/s.tif",
              "<VRTDataset/>"):
        assert not is_local(p) and is_virtual(p)


def test_display_name():
    assert display_name("/vsizip//data/scenes.zip/scene_1.tif") == "scene_1"
    assert display_name("/vsicurl/https://host/a/b.tif?token=x") == "b"
    assert display_name("/data/scene.tif") == "scene"
    assert display_name("<VRTDataset/>") == "vrt"


def _write(path, value=1):
    with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 5e6)) as dst:
        dst.write(np.full((1, 16, 16), value, dtype=np.uint8))


def test_vsizip_opens_and_fingerprints(tmp_path):
    tif = tmp_path / "scene.tif"
    _write(tif)
    archive = tmp_path / "scenes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tif, "inner/scene.tif")
    path = gdal_path(f"/vsizip/{archive}/inner/scene.tif")
    with rasterio.open(path) as ds:
        assert ds.read(1).sum() == 256
    assert local_container(path) == str(archive)
    fp = fingerprint(path)
    assert fp["path"] == path and fp["container"]["size"] == archive.stat().st_size
    assert fingerprint(path) == fp  # stable
    # Another archive content: another fingerprint (GDAL's digest and the archive's stamp).
    _write(tif, value=2)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tif, "inner/scene.tif")
    changed = fingerprint(path)
    assert changed["gdal"] != fp["gdal"]


def test_local_fingerprint_and_missing(tmp_path):
    tif = tmp_path / "scene.tif"
    _write(tif)
    fp = fingerprint(tif)
    assert fp == {"path": str(tif), "size": tif.stat().st_size,
                  "mtime_ns": tif.stat().st_mtime_ns}
    with pytest.raises(InputFileError, match="nope.tif: file not found"):
        fingerprint(tmp_path / "nope.tif")
    with pytest.raises(InputFileError, match="GDAL cannot open it"):
        fingerprint(f"/vsizip/{tmp_path}/nope.zip/x.tif")
