"""`geovision.tiling.tile` against independent computations on synthetic scenes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
from affine import Affine
from rasterio.windows import Window

from geovision.geo.windows import flush_origins
from geovision.synthetic import KINDS, class_signature
from geovision.tiling import TileOptions, tile


@pytest.fixture(scope="module")
def seg_two_crs(sample_two_crs, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "t.zarr"
    tile([sample_two_crs.rasters[0], sample_two_crs.rasters[1]], sample_two_crs.labels, out,
         TileOptions(class_field="kind", tile_size=64, block_size=128), quiet=True)
    return out


def test_opens_with_xarray_named_dims(seg_two_crs):
    ds = xr.open_zarr(seg_two_crs)
    assert ds["image"].dims == ("tile", "band", "y", "x")
    assert ds["mask"].dims == ("tile", "y", "x")
    assert ds["transform"].dims == ("tile", "affine")
    for name in ("source", "row", "col", "valid", "split"):
        assert ds[name].dims == ("tile",)
    assert ds.attrs["geovision"]["format"] == "tiles"
    assert ds.attrs["task"] == "segmentation"
    assert ds.attrs["ignore_index"] == 255


def test_masks_equal_full_raster_rasterize(seg_two_crs, sample_two_crs, full_mask):
    g = zarr.open_group(str(seg_two_crs), mode="r")
    src, rows, cols, masks = g["source"][:], g["row"][:], g["col"][:], g["mask"][:]
    for s, path in enumerate(sample_two_crs.rasters):
        ref = full_mask(path, sample_two_crs.labels)
        sel = np.flatnonzero(src == s)
        assert len(sel) > 0
        for i in sel:
            r, c = rows[i], cols[i]
            np.testing.assert_array_equal(masks[i], ref[r:r + 64, c:c + 64])


def test_tile_pixels_and_transforms_are_exact(seg_two_crs, sample_two_crs):
    g = zarr.open_group(str(seg_two_crs), mode="r")
    attrs = g.attrs.asdict()
    for i in range(g["image"].shape[0]):
        s, r, c = int(g["source"][i]), int(g["row"][i]), int(g["col"][i])
        src_t = Affine(*attrs["sources"][s]["transform"])
        t = Affine(*g["transform"][i])
        assert t == src_t @ Affine.translation(c, r)
        col, row = ~src_t @ (t @ (0, 0))
        assert (round(col, 6), round(row, 6)) == (c, r)
        if i % 5 == 0:
            with rasterio.open(sample_two_crs.rasters[s]) as ds:
                expect = ds.read(window=Window(c, r, 64, 64))
            np.testing.assert_array_equal(g["image"][i], expect)


def test_labels_from_another_crs_land_on_their_pixels(seg_two_crs):
    """Labels in EPSG:4326 on UTM / LAEA rasters: each class's pixels show its signature."""
    g = zarr.open_group(str(seg_two_crs), mode="r")
    image = g["image"][:].astype(np.float64)
    mask = g["mask"][:]
    table = np.stack([class_signature(k, 4) for k in ("background", *KINDS)])
    valid = mask != 255
    pixels = image.transpose(1, 0, 2, 3)[:, valid].T  # (n, 4)
    nearest = np.argmin(((pixels[:, None, :] - table[None]) ** 2).sum(-1), axis=1)
    agree = (nearest == mask[valid]).mean()
    assert agree > 0.97, agree


def test_nodata_becomes_ignore_and_valid_fraction(sample_utm, tmp_path):
    out = tile(sample_utm.rasters, sample_utm.labels, tmp_path / "n.zarr",
               TileOptions(class_field="kind", tile_size=64, min_valid=0.0, split="random"),
               quiet=True)
    g = zarr.open_group(str(out), mode="r")
    with rasterio.open(sample_utm.rasters[0]) as ds:
        valid = ds.dataset_mask() > 0
    assert not valid.all()
    for i in range(g["mask"].shape[0]):
        r, c = int(g["row"][i]), int(g["col"][i])
        v = valid[r:r + 64, c:c + 64]
        np.testing.assert_array_equal(g["mask"][i] == 255, ~v)
        assert g["valid"][i] == pytest.approx(v.mean())
    # tiles wholly in nodata are never kept
    assert (g["valid"][:] > 0).all()


def test_min_valid_skips_mostly_nodata(sample_utm, tmp_path):
    out = tile(sample_utm.rasters, sample_utm.labels, tmp_path / "m.zarr",
               TileOptions(class_field="kind", tile_size=64, min_valid=0.9, split="random"),
               quiet=True)
    g = zarr.open_group(str(out), mode="r")
    assert (g["valid"][:] >= 0.9).all()
    n_all = len(flush_origins(256, 64, 64)) * len(flush_origins(384, 64, 64))
    assert 0 < g["valid"].shape[0] < n_all


@pytest.mark.parametrize(("size", "stride"), [(64, 64), (64, 32), (96, 40)])
def test_stride_counts(sample_utm, tmp_path, size, stride):
    out = tile(sample_utm.rasters, sample_utm.labels, tmp_path / "s.zarr",
               TileOptions(class_field="kind", tile_size=size, stride=stride, min_valid=0.0,
                           split="random"), quiet=True)
    g = zarr.open_group(str(out), mode="r")
    ny = math.ceil((256 - size) / stride) + 1
    nx = math.ceil((384 - size) / stride) + 1
    with rasterio.open(sample_utm.rasters[0]) as ds:
        valid = ds.dataset_mask() > 0
    # every window except those wholly nodata (valid 0) is kept
    expect = [(r, c) for r in flush_origins(256, size, stride)
              for c in flush_origins(384, size, stride) if valid[r:r + size, c:c + size].any()]
    assert len(expect) <= ny * nx
    got = list(zip(g["row"][:].tolist(), g["col"][:].tolist(), strict=True))
    assert got == expect
    assert g.attrs["stride"] == stride


def _footprints(g, split, shape):
    cover = np.zeros(shape, dtype=bool)
    size = g.attrs["tile_size"]
    for i in np.flatnonzero(g["split"][:] == split):
        r, c = int(g["row"][i]), int(g["col"][i])
        cover[r:r + size, c:c + size] = True
    return cover


@pytest.mark.parametrize("stride", [64, 48])
def test_block_split_is_spatially_disjoint_and_reproducible(sample_utm, tmp_path, stride):
    opts = TileOptions(class_field="kind", tile_size=64, stride=stride, block_size=64,
                       min_valid=0.0, seed=7, fractions=(0.6, 0.2, 0.2))
    a = zarr.open_group(str(tile(sample_utm.rasters, sample_utm.labels, tmp_path / "a.zarr",
                                 opts, quiet=True)), mode="r")
    b = zarr.open_group(str(tile(sample_utm.rasters, sample_utm.labels, tmp_path / "b.zarr",
                                 opts, quiet=True)), mode="r")
    np.testing.assert_array_equal(a["split"][:], b["split"][:])
    assert set(np.unique(a["split"][:])) == {0, 1, 2}
    covers = [_footprints(a, s, (256, 384)) for s in range(3)]
    assert not (covers[0] & covers[1]).any()
    assert not (covers[0] & covers[2]).any()
    assert not (covers[1] & covers[2]).any()
    other = zarr.open_group(str(tile(
        sample_utm.rasters, sample_utm.labels, tmp_path / "c.zarr",
        TileOptions(class_field="kind", tile_size=64, stride=stride, block_size=64,
                    min_valid=0.0, seed=8, fractions=(0.6, 0.2, 0.2)), quiet=True)), mode="r")
    assert not np.array_equal(other["split"][:], a["split"][:])


def test_stats_over_valid_train_pixels(sample_utm, tmp_path):
    out = tile(sample_utm.rasters, sample_utm.labels, tmp_path / "st.zarr",
               TileOptions(class_field="kind", tile_size=64, min_valid=0.0, split="random",
                           fractions=(0.5, 0.5, 0.0), seed=1), quiet=True)
    g = zarr.open_group(str(out), mode="r")
    train = g["split"][:] == 0
    image = g["image"][:][train].astype(np.float64)
    valid = g["mask"][:][train] != 255
    px = image.transpose(1, 0, 2, 3)[:, valid]
    st = g.attrs["stats"]
    np.testing.assert_allclose(st["mean"], px.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(st["std"], px.std(axis=1), rtol=1e-9)
    assert st["min"] == px.min(axis=1).tolist() and st["max"] == px.max(axis=1).tolist()
    assert st["pixels"] == px.shape[1]


def test_classification_label_is_largest_class(sample_utm, tmp_path, full_mask):
    out = tile(sample_utm.rasters, sample_utm.labels, tmp_path / "c.zarr",
               TileOptions(task="classification", class_field="kind", tile_size=64),
               quiet=True)
    g = zarr.open_group(str(out), mode="r")
    assert "mask" not in g and g["label"].dtype == np.int16
    ref = full_mask(sample_utm.rasters[0], sample_utm.labels)
    for i in range(g["label"].shape[0]):
        r, c = int(g["row"][i]), int(g["col"][i])
        counts = np.bincount(ref[r:r + 64, c:c + 64].ravel(), minlength=256)[:5]
        assert g["label"][i] == np.argmax(counts)
    assert xr.open_zarr(out)["label"].dims == ("tile",)


def test_detection_boxes_hold_the_objects(sample_utm, tmp_path):
    out = tile(sample_utm.rasters, sample_utm.objects, tmp_path / "d.zarr",
               TileOptions(task="detection", tile_size=64, min_valid=0.0, split="random"),
               quiet=True)
    g = zarr.open_group(str(out), mode="r")
    boxes, labels, tiles = g["boxes"][:], g["box_label"][:], g["box_tile"][:]
    assert len(boxes) > 5
    assert set(labels.tolist()) == {1}
    assert ((boxes >= 0) & (boxes <= 64)).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    ds = xr.open_zarr(out)
    assert ds["boxes"].dims == ("box", "coord") and ds["box_tile"].dims == ("box",)
    # a box holds the bright building pixels: its centre pixel looks like a building
    image = g["image"][:]
    bright = class_signature("building", 4)[0] * 40
    hits = 0
    for b, t in zip(boxes, tiles, strict=True):
        cx, cy = int((b[0] + b[2]) / 2), int((b[1] + b[3]) / 2)
        hits += image[t, 0, cy, cx] > 0.8 * bright
    assert hits / len(boxes) > 0.9


def test_luxembourg_real_sample(luxembourg, tmp_path, full_mask):
    out = tile([luxembourg / "elev.tif"], luxembourg / "lux.shp", tmp_path / "lux.zarr",
               TileOptions(class_field="NAME_1", tile_size=16, min_valid=0.0, split="random"),
               quiet=True)
    g = zarr.open_group(str(out), mode="r")
    assert [c["name"] for c in g.attrs["classes"]] == [
        "background", "Diekirch", "Grevenmacher", "Luxembourg"]
    ref = full_mask(str(luxembourg / "elev.tif"), str(luxembourg / "lux.shp"), field="NAME_1")
    assert (ref == 255).any()
    for i in range(g["mask"].shape[0]):
        r, c = int(g["row"][i]), int(g["col"][i])
        np.testing.assert_array_equal(g["mask"][i], ref[r:r + 16, c:c + 16])
    assert g.attrs["sources"][0]["epsg"] == 4326
    assert g["image"].dtype == np.int16
