"""A COG written strip by strip is the COG that GDAL's COG driver writes of the same raster."""

from __future__ import annotations

import json
import struct
import threading
import time

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rio_cogeo.cogeo import cog_validate

from geovision.formats import ClassInfo
from geovision.inference import cogfile
from geovision.inference.cogfile import TiffFormatError, read_ifd
from geovision.inference.cogwriter import CogWriter
from geovision.inference.overviews import AVERAGE, MODE
from geovision.inference.spare import SpareTime
from geovision.inference.writers import describe_classes, describe_probabilities
from tests.inference.gdal_cog import cog_levels, tiled_profile, to_cog
from tests.inference.infer_helpers import CLASSES

INFOS = [ClassInfo.from_json(c) for c in CLASSES]
TRANSFORM = Affine(10.0, 0, 500_000.0, 0, -10.0, 5_300_000.0)


def described(path) -> dict:
    """Everything a reader sees of a raster besides its pixels."""
    with rasterio.open(path) as ds:
        profile = {**ds.profile, "nodata": repr(ds.nodata)}  # so that NaN equals NaN
        info = {"profile": profile, "tags": ds.tags(), "band_tags": ds.tags(1),
                "descriptions": ds.descriptions, "scales": ds.scales, "offsets": ds.offsets,
                "colorinterp": ds.colorinterp, "overviews": ds.overviews(1),
                "structure": ds.tags(ns="IMAGE_STRUCTURE"), "bounds": ds.bounds}
        info["colormap"] = ds.colormap(1) if ds.count == 1 else None
    return info


def tiles(path) -> list[list[bytes]]:
    """The compressed bytes of every tile of every level."""
    out = []
    with rasterio.open(path) as ds:
        n = len(ds.overviews(1))
    for level in range(n + 1):
        with rasterio.open(path, **({} if level == 0 else {"OVERVIEW_LEVEL": level - 1})) as ds:
            offsets = [int(ds.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1))
                       for r in range((ds.height + 511) // 512)
                       for c in range((ds.width + 511) // 512)]
            sizes = [int(ds.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1))
                     for r in range((ds.height + 511) // 512)
                     for c in range((ds.width + 511) // 512)]
        with open(path, "rb") as f:
            level_tiles = []
            for o, s in zip(offsets, sizes, strict=True):
                f.seek(o)
                level_tiles.append(f.read(s))
        out.append(level_tiles)
    return out


def output(kind: str, shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, dict]:
    """Class ids or probabilities (compact or float) with a nodata corner, and how to write
    them, as ``infer`` describes them."""
    rng = np.random.default_rng(seed)
    h, w = shape
    if kind == "classes":
        data = np.repeat(rng.integers(0, 5, (1, h // 7 + 1, w)), 7, axis=1)[:, :h]
        data = data.astype(np.uint8)
        how = {"dtype": "uint8", "nodata": 255.0, "resampling": MODE,
               "describe": lambda d: describe_classes(d, INFOS)}
    elif kind == "compact":
        data = rng.integers(0, 255, (5, h, w)).astype(np.uint8)
        how = {"dtype": "uint8", "nodata": 255.0, "resampling": AVERAGE,
               "describe": lambda d: describe_probabilities(d, INFOS, True)}
    else:
        data = rng.random((5, h, w)).astype(np.float32)
        how = {"dtype": "float32", "nodata": float("nan"), "resampling": AVERAGE,
               "describe": lambda d: describe_probabilities(d, INFOS, False)}
    data[:, :h // 3, :w // 5] = how["nodata"]
    return data, how


def gdal_cog(tmp_path, data: np.ndarray, how: dict, crs: str) -> str:
    """The reference: a tiled GeoTIFF converted by GDAL's COG driver."""
    count, h, w = data.shape
    tif = tmp_path / "today.tif"
    with rasterio.open(tif, "w", **tiled_profile(height=h, width=w, count=count,
                                                 dtype=how["dtype"], crs=CRS.from_string(crs),
                                                 transform=TRANSFORM,
                                                 nodata=how["nodata"])) as dst:
        how["describe"](dst)
        dst.write(data)
    to_cog(tif, tmp_path / "today.cog.tif", resampling=how["resampling"])
    return str(tmp_path / "today.cog.tif")


def strip_cog(tmp_path, data: np.ndarray, how: dict, crs: str, seed: int = 1,
              spare: SpareTime | None = None, settle: bool = False) -> str:
    """The writer's COG of ``data`` written in random row counts.

    ``settle``: after each write, wait until the spare-time helper has encoded every strip
    queued so far (so that it, not the caller, encodes them all).
    """
    count, h, w = data.shape
    writer = CogWriter(tmp_path / "mine.tif", height=h, width=w, count=count,
                       dtype=how["dtype"], nodata=how["nodata"], crs=CRS.from_string(crs),
                       transform=TRANSFORM, resampling=how["resampling"],
                       workdir=tmp_path / "work", describe=how["describe"], spare=spare)
    rng = np.random.default_rng(seed)
    row = 0
    while row < h:
        n = int(rng.integers(1, 700))
        writer.write(data[:, row:row + n])
        row += n
        deadline = time.monotonic() + 10
        while settle and time.monotonic() < deadline and any(
                t.by is None for _, t in writer._encoding):
            time.sleep(0.005)
    strips = len(writer._encoding) + sum(map(len, writer.strips))
    writer.close()
    assert not (tmp_path / "work").exists()  # strips and template are gone
    if settle:
        assert writer.by_spare == strips  # the helper encoded every one
    elif spare is not None:
        assert writer.by_spare == 0
    return str(tmp_path / "mine.tif")


@pytest.mark.parametrize(("kind", "shape", "crs"), [
    ("classes", (1100, 1031), "EPSG:32633"),
    ("compact", (700, 1300), "EPSG:4326"),
    ("float", (513, 600), "EPSG:32633"),
    ("classes", (300, 220), "EPSG:4326"),
])
def test_same_cog_as_gdals_cog_driver(tmp_path, kind, shape, crs):
    data, how = output(kind, shape)
    ref, mine = gdal_cog(tmp_path, data, how, crs), strip_cog(tmp_path, data, how, crs)
    valid, errors, warnings = cog_validate(mine, quiet=True)
    assert valid and not errors and not warnings
    for a, b in zip(cog_levels(mine), cog_levels(ref), strict=True):
        assert a.tobytes() == b.tobytes()
    assert described(mine) == described(ref)
    assert tiles(mine) == tiles(ref)  # the very same compressed tiles, laid out alike


@pytest.mark.parametrize("helper", ["ahead", "busy", "prompt"])
def test_strips_encoded_in_spare_time_make_the_same_cog(tmp_path, helper):
    data, how = output("compact", (1100, 700))
    ref = gdal_cog(tmp_path, data, how, "EPSG:32633")
    release = threading.Event()
    # "prompt": three encoder threads at normal priority (CUDA's), strips in any order
    with SpareTime(idle=helper != "prompt", threads=3 if helper == "prompt" else 1) as spare:
        if helper == "busy":  # the helper is held up: the writer encodes every strip itself
            spare.submit(lambda who: release.wait(10))
        mine = strip_cog(tmp_path, data, how, "EPSG:32633", spare=spare,
                         settle=helper != "busy")
        release.set()
    assert tiles(mine) == tiles(ref) and described(mine) == described(ref)


def test_class_names_colours_and_scales_survive(tmp_path):
    data, how = output("classes", (600, 700))
    path = strip_cog(tmp_path, data, how, "EPSG:32633")
    with rasterio.open(path) as ds:
        assert ds.colormap(1)[1] == (227, 26, 28, 255) and ds.colormap(1)[255] == (0, 0, 0, 0)
        assert json.loads(ds.tags()["classes"])[4]["name"] == "water"
        assert ds.tags(1)["class_3"] == "forest" and ds.nodata == 255
        assert ds.crs == CRS.from_epsg(32633) and ds.transform == TRANSFORM
    data, how = output("compact", (600, 700))
    path = strip_cog(tmp_path / "p", data, how, "EPSG:32633")
    with rasterio.open(path) as ds:
        assert ds.descriptions[1] == "p_building"
        assert ds.scales == (1 / 254,) * 5 and ds.offsets == (0.0,) * 5


def test_big_outputs_are_bigtiffs(tmp_path, monkeypatch):
    monkeypatch.setattr(cogfile, "CLASSIC_LIMIT", 0)
    data, how = output("compact", (700, 600))
    mine = strip_cog(tmp_path, data, how, "EPSG:32633")
    with open(mine, "rb") as f:
        assert struct.unpack("<H", f.read(4)[2:4])[0] == 43  # BigTIFF
    assert read_ifd(mine).bigtiff
    assert cog_validate(mine, quiet=True)[0]
    ref = gdal_cog(tmp_path, data, how, "EPSG:32633")
    for a, b in zip(cog_levels(mine), cog_levels(ref), strict=True):
        assert a.tobytes() == b.tobytes()


def test_missing_rows_and_foreign_strips_are_refused(tmp_path):
    data, _ = output("classes", (600, 700))
    writer = CogWriter(tmp_path / "x.tif", height=600, width=700, count=1, dtype="uint8",
                       nodata=255, crs=CRS.from_epsg(32633), transform=TRANSFORM,
                       resampling=MODE,
                       workdir=tmp_path / "work")
    writer.write(data[:, :300])
    with pytest.raises(ValueError, match="300 of 600 rows"):
        writer.close()
    with pytest.raises(ValueError, match="for a raster of 600"):
        writer.write(data[:, :400])
    writer.discard()
    assert not (tmp_path / "work").exists() and not (tmp_path / "x.tif").exists()
    # a strip stored otherwise than the template says cannot become part of the COG
    other = tmp_path / "other.tif"
    with rasterio.open(other, "w", driver="GTiff", height=512, width=700, count=1,
                       dtype="uint8", tiled=True, blockxsize=512, blockysize=512,
                       compress="lzw") as dst:
        dst.write(data[:, :512])
    writer = CogWriter(tmp_path / "y.tif", height=512, width=700, count=1, dtype="uint8",
                       nodata=255, crs=CRS.from_epsg(32633), transform=TRANSFORM,
                       resampling=MODE,
                       workdir=tmp_path / "work2")
    with pytest.raises(TiffFormatError, match="tag 259 differs"):
        cogfile.assemble(tmp_path / "y.tif", writer.template, [[other], []],
                         [(512, 700), (256, 350)])
    with pytest.raises(TiffFormatError, match="not a TIFF"):
        read_ifd(__file__)
