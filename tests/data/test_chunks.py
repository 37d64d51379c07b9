"""ChunkReader reads exactly what zarr reads, for the layouts it accepts, and no others."""

import numpy as np
import pytest
import zarr
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)

from geovision.data import chunk_reader
from geovision.tiling.store import image_codec


def _array(path, dtype, *, n=37, item=(3, 8, 8), shard=16, compressors="auto",
           fill_value=0, serializer="auto", chunks=None):
    kwargs = {"shards": (shard, *item)} if shard else {}
    arr = zarr.create_array(str(path), shape=(n, *item), dtype=dtype,
                            chunks=chunks or (1, *item), compressors=compressors,
                            serializer=serializer, fill_value=fill_value, **kwargs)
    rng = np.random.default_rng(0)
    data = (rng.normal(100, 30, (n, *item))).astype(dtype)
    data[5] = fill_value  # a chunk equal to the fill value is not written
    arr[...] = data
    arr[-2:] = fill_value  # chunks missing at the end of the partial last shard
    data[-2:] = fill_value
    return data


def _check(path, data):
    reader = chunk_reader(path)
    assert reader is not None
    for i in range(len(data)):
        got = reader.read(i)
        assert got.dtype == data.dtype and got.flags.writeable
        np.testing.assert_array_equal(got, data[i])
        np.testing.assert_array_equal(got, zarr.open_array(str(path), mode="r")[i])


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64"])
@pytest.mark.parametrize("item", [(4, 16, 16), (1, 8, 8), (7, 4, 5)])
def test_reads_what_the_tiler_writes(tmp_path, dtype, item):
    path = tmp_path / "a.zarr"
    _check(path, _array(path, dtype, item=item, compressors=image_codec(dtype)))


@pytest.mark.parametrize("codecs", [
    (ZstdCodec(),), (GzipCodec(),), (Crc32cCodec(),), (BloscCodec(), Crc32cCodec()), (),
])
@pytest.mark.parametrize("endian", ["little", "big"])
def test_other_codecs_and_byte_orders(tmp_path, codecs, endian):
    path = tmp_path / "a.zarr"
    data = _array(path, "int16", compressors=codecs, serializer=BytesCodec(endian=endian))
    _check(path, data)


@pytest.mark.parametrize("where", ["start", "end"])
def test_shard_index_location_and_unsharded(tmp_path, where):
    item = (2, 4, 4)
    path = tmp_path / "a.zarr"
    arr = zarr.create_array(
        str(path), shape=(20, *item), dtype="float32", chunks=(6, *item), fill_value=np.nan,
        compressors=None,
        serializer=ShardingCodec(chunk_shape=(1, *item), index_location=where,
                                 codecs=[BytesCodec(), ZstdCodec()]))
    data = np.arange(20 * 32, dtype="float32").reshape(20, *item)
    arr[:10] = data[:10]  # the last shards were never written: NaN
    data[10:] = np.nan
    _check(path, data)
    flat = tmp_path / "flat.zarr"
    _check(flat, _array(flat, "uint16", shard=0))


def test_layouts_it_does_not_know(tmp_path):
    _array(tmp_path / "several.zarr", "uint8", chunks=(2, 3, 8, 8), shard=0)
    assert chunk_reader(tmp_path / "several.zarr") is None
    arr = zarr.create_array(str(tmp_path / "t.zarr"), shape=(4, 2, 3), dtype="uint8",
                            chunks=(1, 2, 3), filters=[TransposeCodec(order=(0, 2, 1))])
    arr[...] = 1
    assert chunk_reader(tmp_path / "t.zarr") is None


def test_a_corrupt_chunk_is_an_error(tmp_path):
    path = tmp_path / "a.zarr"
    _array(path, "uint8", compressors=(Crc32cCodec(),), shard=0)
    chunk = path / "c" / "0" / "0" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[0] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        chunk_reader(path).read(0)
