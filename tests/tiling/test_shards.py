"""Shards written as bytes by `geovision.tiling.shards` read back unchanged through zarr."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr
import zarr

from geovision.tiling.shards import (
    FileRange,
    assemble_shard,
    encode_chunk,
    shard_layout,
    write_shard,
)
from geovision.tiling.store import create_tile_arrays


def _store(path, n, bands, dtype, fill, task="segmentation", shard=4, size=8):
    plan = {"row": np.arange(n, dtype=np.int32)}
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    create_tile_arrays(group, n_tiles=n, bands=bands, tile_size=size, dtype=dtype, task=task,
                       shard=shard, fill_value=fill, plan=plan)
    return group


def _images(n, bands, dtype, seed=0, size=8):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(100, 30, (n, bands, size, size)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -500), min(info.max, 3000), (n, bands, size, size),
                        endpoint=True).astype(dtype)


def _write(layout, items):
    per = layout.per_shard
    for s in range(-(-len(items) // per)):
        chunks = [encode_chunk(layout, x) for x in items[s * per:(s + 1) * per]]
        write_shard(layout, s, chunks)


@pytest.mark.parametrize(("dtype", "bands", "fill"), [
    ("uint8", 1, 0), ("uint8", 4, 0), ("uint16", 3, 0), ("int16", 2, -9999),
    ("float32", 5, float("nan")), ("float32", 1, 0.0),
])
def test_image_shards_read_back_and_equal_zarr_bytes(tmp_path, dtype, bands, fill):
    n = 10  # shards of 4: the last one is partial
    data = _images(n, bands, dtype)
    data[3] = fill  # an item equal to the fill value: not stored, reads as fill
    data[8:] = fill  # a shard whose stored items are all fill: no object at all
    ours = _store(tmp_path / "ours.zarr", n, bands, dtype, fill)
    _write(shard_layout(tmp_path / "ours.zarr" / "image"), data)
    np.testing.assert_array_equal(ours["image"][...], data)
    ds = xr.open_zarr(tmp_path / "ours.zarr", consolidated=False)
    np.testing.assert_array_equal(ds["image"].values, data)

    theirs = _store(tmp_path / "zarr.zarr", n, bands, dtype, fill)
    theirs["image"][...] = data
    for s in range(3):
        a = tmp_path / "ours.zarr" / "image" / "c" / str(s) / "0" / "0" / "0"
        b = tmp_path / "zarr.zarr" / "image" / "c" / str(s) / "0" / "0" / "0"
        assert a.exists() == b.exists()
        if b.exists():
            assert a.read_bytes() == b.read_bytes()  # same bytes as zarr-python writes
    assert not (tmp_path / "ours.zarr" / "image" / "c" / "2").exists()


def test_mask_shards_with_ignore_fill(tmp_path):
    n = 7
    rng = np.random.default_rng(1)
    masks = rng.integers(0, 4, (n, 8, 8)).astype(np.uint8)
    masks[2] = 255  # all ignore_index: the fill value
    g = _store(tmp_path / "m.zarr", n, 3, "uint8", 0)
    _write(shard_layout(tmp_path / "m.zarr" / "mask"), masks)
    np.testing.assert_array_equal(g["mask"][...], masks)
    ref = _store(tmp_path / "z.zarr", n, 3, "uint8", 0)
    ref["mask"][...] = masks
    for s in range(2):
        a = tmp_path / "m.zarr" / "mask" / "c" / str(s) / "0" / "0"
        b = tmp_path / "z.zarr" / "mask" / "c" / str(s) / "0" / "0"
        assert a.read_bytes() == b.read_bytes()


def test_negative_zero_is_stored_when_fill_is_zero(tmp_path):
    data = np.zeros((2, 1, 8, 8), np.float32)
    data[1, 0, 0, 0] = -0.0
    g = _store(tmp_path / "z.zarr", 2, 1, "float32", 0.0)
    layout = shard_layout(tmp_path / "z.zarr" / "image")
    assert encode_chunk(layout, data[0]) is None
    assert encode_chunk(layout, data[1]) is not None
    _write(layout, data)
    out = g["image"][...]
    assert np.signbit(out[1, 0, 0, 0]) and not np.signbit(out[0, 0, 0, 0])


def test_rewriting_an_all_fill_shard_removes_the_old_object(tmp_path):
    g = _store(tmp_path / "z.zarr", 4, 1, "uint8", 0)
    layout = shard_layout(tmp_path / "z.zarr" / "image")
    _write(layout, _images(4, 1, "uint8"))
    assert layout.path(0).exists()
    assert not write_shard(layout, 0, [None] * 4)
    assert not layout.path(0).exists()
    assert not g["image"][...].any()


def test_index_at_start_and_big_endian(tmp_path):
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec

    data = _images(6, 2, "uint16")
    arr = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=data.shape, dtype="uint16", chunks=(3, 2, 8, 8),
        serializer=ShardingCodec(
            chunk_shape=(1, 2, 8, 8),
            codecs=[BytesCodec(endian="big"), BloscCodec(cname="zstd", clevel=3)],
            index_codecs=[BytesCodec(endian="big"), Crc32cCodec()], index_location="start"),
        compressors=None, fill_value=0, zarr_format=3)
    layout = shard_layout(tmp_path / "a.zarr")
    assert layout.index_at_start and layout.index_order == ">"
    _write(layout, data)
    np.testing.assert_array_equal(arr[...], data)


def test_unsupported_layouts_are_refused(tmp_path):
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=(4, 8), dtype="uint8",
                      chunks=(1, 8), zarr_format=3)
    with pytest.raises(ValueError, match="not a sharded array"):
        shard_layout(tmp_path / "plain.zarr")
    zarr.create_array(str(tmp_path / "two.zarr"), shape=(4, 8), dtype="uint8",
                      chunks=(2, 8), shards=(4, 8), zarr_format=3)
    with pytest.raises(ValueError, match="one item"):
        shard_layout(tmp_path / "two.zarr")


def test_chunks_copied_from_other_files_and_assembled_bytes_agree(tmp_path):
    n, bands = 8, 3
    data = _images(n, bands, "uint16", seed=4)
    data[5] = 0
    g = _store(tmp_path / "z.zarr", n, bands, "uint16", 0)
    layout = shard_layout(tmp_path / "z.zarr" / "image")
    encoded = [encode_chunk(layout, x) for x in data]
    spill = tmp_path / "spill.bin"
    spill.write_bytes(b"junk" + b"".join(c for c in encoded if c))
    fd = os.open(spill, os.O_RDONLY)
    try:
        ranges, pos = [], 4
        for c in encoded:
            ranges.append(FileRange(fd, pos, len(c)) if c else None)
            pos += len(c) if c else 0
        mixed = [ranges[k] if k % 2 else encoded[k] for k in range(4)]
        write_shard(layout, 0, mixed)  # bytes and file ranges together
        write_shard(layout, 1, ranges[4:])
    finally:
        os.close(fd)
    np.testing.assert_array_equal(g["image"][...], data)
    assert layout.path(0).read_bytes() == assemble_shard(layout, encoded[:4])
