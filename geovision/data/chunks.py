"""Whole-chunk reads from a local Zarr v3 array, decoded directly with numcodecs.

zarr-python runs every read, however small, through its event loop and a thread hop per
codec: about 1-1.5 ms for one 256 x 256 x 4 tile whose decode takes a fraction of that.
Training reads one tile per item, so that overhead was most of the data path. A
:class:`ChunkReader` reads the bytes of one chunk (through the shard index when the array
is sharded) with a single ``pread`` and decodes them with the same numcodecs codecs zarr
uses, so its output is identical to ``array[i]``.

It understands what :mod:`geovision.tiling.store` writes and the common variations: sharded
or not, shard index at the start or the end with or without its crc32c, inner codecs
``bytes`` (either endianness) followed by any of ``blosc``, ``zstd``, ``gzip`` and ``crc32c``;
missing shards and chunks (zarr does not write chunks that equal the fill value) read as the
fill value, a partial last shard as zarr wrote it. Any other layout (a transpose codec,
several items per chunk) makes :func:`chunk_reader` return None and callers use zarr itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    ZstdCodec,
)

_MISSING = np.uint64(2**64 - 1)

ByteOrder = Literal["<", ">", "|"]


class _Crc32c:
    """crc32c as a decoder: check and strip the 4-byte little-endian checksum."""

    def decode(self, buf: bytes | memoryview, out: Any = None) -> bytes | memoryview:
        import google_crc32c

        data, stored = memoryview(buf)[:-4], bytes(memoryview(buf)[-4:])
        if int.from_bytes(stored, "little") != google_crc32c.value(bytes(data)):
            raise ValueError("zarr chunk or shard index: crc32c checksum does not match")
        return data


def _decoders(codecs: tuple[Any, ...]) -> list[Any] | None:
    """The numcodecs decoders of bytes-to-bytes codecs in decoding order (None: unsupported)."""
    import numcodecs

    out: list[Any] = []
    for codec in reversed(codecs):
        if isinstance(codec, BloscCodec):
            out.append(numcodecs.Blosc())  # blosc frames describe their own settings
        elif isinstance(codec, ZstdCodec):
            out.append(numcodecs.Zstd())
        elif isinstance(codec, GzipCodec):
            out.append(numcodecs.GZip())
        elif isinstance(codec, Crc32cCodec):
            out.append(_Crc32c())
        else:
            return None
    return out


def _byte_order(codec: Any) -> ByteOrder:
    """The numpy byte order of a ``bytes`` codec."""
    endian = str(getattr(codec.endian, "value", codec.endian))
    return "<" if endian == "little" else ">" if endian == "big" else "|"


@dataclass
class ChunkReader:
    """Reads item ``i`` (one chunk) of a local Zarr v3 array chunked one item per chunk.

    Use :func:`chunk_reader` to build one. The object holds no open file: it pickles to
    DataLoader workers, each of which caches the shard indexes it reads.

    Attributes:
        root: the array's directory.
        shape: the shape of one item (the array's shape without its first axis).
        dtype: the array's native dtype.
        fill_value: the value of items that were never written.
        key: chunk or shard key of a chunk-grid coordinate along the first axis.
        per_shard: items per shard (None: unsharded, one item per stored object).
        index_at_start: the shard index precedes the chunks.
        index_codecs: decoders of the shard index, in decoding order.
        index_order: numpy byte order of the shard index.
        codecs: decoders of a chunk, in decoding order.
        order: numpy byte order of a decoded chunk.
    """

    root: Path
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fill_value: Any
    key: Any
    per_shard: int | None
    index_at_start: bool
    index_codecs: list[Any]
    index_order: ByteOrder
    codecs: list[Any]
    order: ByteOrder
    _indexes: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the cached shard indexes."""
        state = self.__dict__.copy()
        state["_indexes"] = {}
        return state

    def _index(self, shard: int, fd: int) -> np.ndarray:
        """``(per_shard, 2)`` offsets and lengths of the chunks of a shard (cached)."""
        cached = self._indexes.get(shard)
        if cached is not None:
            return cached
        assert self.per_shard is not None
        nbytes = 16 * self.per_shard + 4 * sum(isinstance(c, _Crc32c)
                                               for c in self.index_codecs)
        start = 0 if self.index_at_start else os.fstat(fd).st_size - nbytes
        buf: bytes | memoryview = os.pread(fd, nbytes, start)
        if len(buf) != nbytes or start < 0:
            raise ValueError(f"{self.root}: shard {shard} is truncated")
        for codec in self.index_codecs:
            buf = codec.decode(buf)
        index = np.frombuffer(buf, dtype=np.dtype("u8").newbyteorder(self.index_order))
        index = index.reshape(self.per_shard, 2).astype(np.uint64)
        self._indexes[shard] = index
        return index

    def _bytes(self, i: int) -> bytes | None:
        """The encoded chunk of item ``i``, or None when it was never written."""
        shard, local = (i, 0) if self.per_shard is None else divmod(i, self.per_shard)
        try:
            fd = os.open(self.root / self.key(shard), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            if self.per_shard is None:
                return os.pread(fd, os.fstat(fd).st_size, 0)
            offset, length = self._index(shard, fd)[local]
            if offset == _MISSING:
                return None
            data = os.pread(fd, int(length), int(offset))
            if len(data) != int(length):
                raise ValueError(f"{self.root}: shard {shard} is truncated")
            return data
        finally:
            os.close(fd)

    def read(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        """Item ``i``, decoded into ``out`` (C-contiguous, :attr:`shape` and :attr:`dtype`).

        Returns:
            ``out``, or a new writable array when ``out`` is None.
        """
        if out is None:
            out = np.empty(self.shape, dtype=self.dtype)
        data = self._bytes(i)
        if data is None:
            out[...] = self.fill_value
            return out
        stored = self.dtype.newbyteorder(self.order) if self.dtype.itemsize > 1 else self.dtype
        target = out if stored == self.dtype else np.empty(self.shape, dtype=stored)
        buf: Any = data
        for codec in self.codecs[:-1]:
            buf = codec.decode(buf)
        if self.codecs and not isinstance(self.codecs[-1], _Crc32c):
            self.codecs[-1].decode(buf, out=target)  # straight into the output array
        else:
            if self.codecs:
                buf = self.codecs[-1].decode(buf)
            target.reshape(-1).view(np.uint8)[:] = np.frombuffer(buf, dtype=np.uint8)
        if target is not out:
            out[...] = target  # to the native byte order
        return out


def chunk_reader(path: str | os.PathLike[str]) -> ChunkReader | None:
    """A :class:`ChunkReader` for the local Zarr v3 array at ``path``, or None.

    None when the layout is one the reader does not decode (see the module docstring): read
    that array with zarr.
    """
    import zarr

    array: Any = zarr.open_array(str(path), mode="r")
    meta = array.metadata
    if getattr(meta, "zarr_format", None) != 3 or len(array.shape) < 1:
        return None
    grid = tuple(getattr(meta.chunk_grid, "chunk_shape", ()))
    item = tuple(array.shape[1:])
    codecs = tuple(meta.codecs)
    per_shard: int | None = None
    index_at_start, index_codecs = False, []
    index_order: ByteOrder = "<"
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        sharding = codecs[0]
        if tuple(sharding.chunk_shape) != (1, *item) or grid[1:] != item:
            return None
        per_shard = int(grid[0])
        index = tuple(sharding.index_codecs)
        decoders = _decoders(index[1:])
        if not index or not isinstance(index[0], BytesCodec) or decoders is None:
            return None
        index_at_start = getattr(sharding.index_location, "value", "end") == "start"
        index_codecs, index_order = decoders, _byte_order(index[0])
        codecs = tuple(sharding.codecs)
    elif grid != (1, *item):
        return None
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return None
    chunk_codecs = _decoders(codecs[1:])
    if chunk_codecs is None:
        return None
    dtype = np.dtype(meta.dtype.to_native_dtype())
    n_dims = len(array.shape)
    return ChunkReader(
        root=Path(path), shape=item, dtype=dtype, fill_value=meta.fill_value,
        key=_ChunkKey(meta, n_dims), per_shard=per_shard, index_at_start=index_at_start,
        index_codecs=index_codecs, index_order=index_order, codecs=chunk_codecs,
        order=_byte_order(codecs[0]),
    )


@dataclass(frozen=True)
class _ChunkKey:
    """The stored key of chunk-grid coordinate ``(i, 0, ..., 0)`` (picklable)."""

    meta: Any
    n_dims: int

    def __call__(self, i: int) -> str:
        return str(self.meta.encode_chunk_key((i,) + (0,) * (self.n_dims - 1)))
