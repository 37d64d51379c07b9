"""Whole Zarr v3 shards written as bytes, with the codecs the array's metadata declares.

zarr-python encodes and writes through its event loop, a thread hop per codec and a
read-modify-write of each shard; a tiling task already holds every tile of its shard, so it
can encode the chunks itself (numcodecs, which releases the GIL) and write the shard object in
one ``write``. zarr-python stays the reader that proves the result is a valid array.

An array this module writes is chunked one item per chunk along its first axis and sharded
``n`` items per shard (what :mod:`geovision.tiling.store` creates for ``image`` and ``mask``).
Its ``zarr.json`` gives everything needed::

    codecs: [sharding_indexed {chunk_shape: [1, *item], codecs: [bytes, <bytes-to-bytes>...],
                               index_codecs: [bytes, crc32c?], index_location: end | start}]

A shard object (zarr v3 ``sharding_indexed`` codec) is, for index location ``end``::

    chunk bytes of the items present, in item order | index | crc32c(index)?
    index = n pairs (offset, nbytes), uint64 in the byte order of the index ``bytes`` codec;
            offset counted from the start of the object; (2^64-1, 2^64-1) for an item not
            stored; the crc32c is 4 bytes little-endian of the index bytes.

and with ``start`` the (checksummed) index comes first and every offset grows by its length.
As zarr does (``write_empty_chunks=False``), an item equal to the fill value everywhere (NaN
equal to NaN; +0.0 and -0.0 told apart by their bits when the fill is 0.0) is not stored, and
a shard with no item stored is not written at all (an old object of that name is removed).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import google_crc32c
import numcodecs
import numpy as np

ByteOrder = Literal["<", ">"]

#: Index entry of an item that is not stored.
MISSING = 2**64 - 1


@dataclass(frozen=True)
class ShardLayout:
    """How the shards of one array are encoded and named (picklable, read from zarr.json).

    Attributes:
        root: the array's directory.
        item: shape of one item (one chunk): the array's shape without its first axis.
        dtype: the array's dtype, in the byte order its ``bytes`` codec stores.
        fill_value: the array's fill value.
        per_shard: items per shard (``n``).
        encoders: numcodecs codecs after ``bytes``, in encoding order.
        index_order: numpy byte order of the shard index.
        index_crc: the index carries a crc32c.
        index_at_start: the index precedes the chunks.
        separator: chunk key separator (``/`` for the default encoding).
        ndim: dimensions of the array.
    """

    root: Path
    item: tuple[int, ...]
    dtype: np.dtype[Any]
    fill_value: Any
    per_shard: int
    encoders: tuple[Any, ...]
    index_order: ByteOrder
    index_crc: bool
    index_at_start: bool
    separator: str
    ndim: int

    def path(self, shard: int) -> Path:
        """The object of shard ``shard`` (default chunk key encoding: ``c/<shard>/0/...``)."""
        key = self.separator.join(["c", str(shard)] + ["0"] * (self.ndim - 1))
        return self.root / key

    @property
    def index_nbytes(self) -> int:
        """Bytes of the encoded index."""
        return 16 * self.per_shard + (4 if self.index_crc else 0)


def _order(codec: dict[str, Any]) -> ByteOrder:
    endian = (codec.get("configuration") or {}).get("endian", "little")
    return "<" if endian == "little" else ">"


def _encoder(codec: dict[str, Any], typesize: int) -> Any:
    """The numcodecs codec of one bytes-to-bytes codec of zarr.json."""
    name, conf = codec["name"], codec.get("configuration") or {}
    if name == "blosc":
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[conf.get("shuffle", "noshuffle")]
        return numcodecs.Blosc(cname=conf["cname"], clevel=conf["clevel"], shuffle=shuffle,
                               blocksize=conf.get("blocksize", 0),
                               typesize=conf.get("typesize", typesize))
    if name == "zstd":
        return numcodecs.Zstd(level=conf.get("level", 0), checksum=conf.get("checksum", False))
    if name == "gzip":
        return numcodecs.GZip(level=conf.get("level", 5))
    if name == "crc32c":
        return _Crc32c()
    raise ValueError(f"codec {name!r} is not one shards.py encodes")


class _Crc32c:
    """crc32c as an encoder: append the 4-byte little-endian checksum."""

    def get_config(self) -> dict[str, str]:
        """The codec's configuration, as numcodecs codecs give theirs."""
        return {"id": "crc32c"}

    def encode(self, buf: Any) -> bytes:
        data = bytes(memoryview(buf).cast("B"))
        return data + google_crc32c.value(data).to_bytes(4, "little")


def shard_layout(array_dir: str | os.PathLike[str],
                 meta: dict[str, Any] | None = None) -> ShardLayout:
    """Read the layout of a sharded array from its ``zarr.json``.

    Args:
        array_dir: the array's directory (where its shards go).
        meta: the array's metadata document, when it is not read from ``zarr.json``.

    Raises:
        ValueError: the array is not sharded one item per chunk along its first axis, or uses
            a codec this module does not encode (write it with zarr instead).
    """
    root = Path(array_dir)
    if meta is None:
        meta = json.loads((root / "zarr.json").read_text())
    shape = tuple(meta["shape"])
    grid = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    codecs = meta["codecs"]
    if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
        raise ValueError(f"{root}: not a sharded array")
    conf = codecs[0]["configuration"]
    item = shape[1:]
    if tuple(conf["chunk_shape"]) != (1, *item) or grid[1:] != item:
        raise ValueError(f"{root}: chunks are not one item along the first axis")
    inner, index = conf["codecs"], conf["index_codecs"]
    if inner[0]["name"] != "bytes" or index[0]["name"] != "bytes":
        raise ValueError(f"{root}: first codec is not 'bytes'")
    if [c["name"] for c in index[1:]] not in ([], ["crc32c"]):
        raise ValueError(f"{root}: index codecs {index} are not bytes[+crc32c]")
    dtype = np.dtype(meta["data_type"])
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(_order(inner[0]))
    encoding = meta.get("chunk_key_encoding", {})
    if encoding.get("name", "default") != "default":
        raise ValueError(f"{root}: chunk key encoding {encoding} is not 'default'")
    fill = meta["fill_value"]
    if isinstance(fill, str):  # "NaN", "Infinity", "-Infinity"
        fill = float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(fill, fill))
    return ShardLayout(
        root=root, item=item, dtype=dtype, fill_value=fill, per_shard=int(grid[0]),
        encoders=tuple(_encoder(c, dtype.itemsize) for c in inner[1:]),
        index_order=_order(index[0]), index_crc=len(index) > 1,
        index_at_start=conf.get("index_location", "end") == "start",
        separator=(encoding.get("configuration") or {}).get("separator", "/"),
        ndim=len(shape),
    )


def is_fill(item: np.ndarray, fill: Any) -> bool:
    """True when every value of ``item`` equals the fill value, as zarr decides it."""
    first = item.flat[0] if item.size else fill
    if item.dtype.kind != "f" and first != fill:  # the usual case: decided by one pixel
        return False
    if item.dtype.kind == "f":
        if isinstance(fill, float) and np.isnan(fill):
            return bool(np.isnan(item).all())
        if fill == 0.0:  # +0.0 and -0.0 differ: compare bits
            bits = item.view(f"u{item.dtype.itemsize}")
            return not bits.any()
    return not np.any(item != fill)


def encode_chunk(layout: ShardLayout, item: np.ndarray) -> bytes | None:
    """The stored bytes of one item, or None when it equals the fill value (not stored)."""
    if item.shape != layout.item:
        raise ValueError(f"item of shape {item.shape}; the array's items are {layout.item}")
    if is_fill(item, layout.fill_value):
        return None
    buf: Any = np.ascontiguousarray(item, dtype=layout.dtype).reshape(-1).view(np.uint8)
    for codec in layout.encoders:
        buf = codec.encode(buf)
    return bytes(buf)


@dataclass(frozen=True)
class FileRange:
    """A chunk's stored bytes lying in another file: ``nbytes`` bytes at ``offset`` of ``fd``."""

    fd: int
    offset: int
    nbytes: int


Chunk = bytes | FileRange | None


def _size(chunk: Chunk) -> int:
    if chunk is None:
        return 0
    return chunk.nbytes if isinstance(chunk, FileRange) else len(chunk)


def shard_index(layout: ShardLayout, sizes: Sequence[int]) -> bytes:
    """The encoded index of a shard whose items have stored ``sizes`` (0: not stored).

    Items are laid out in order after the index (location ``start``) or from offset 0
    (location ``end``); the index has ``per_shard`` entries whatever ``len(sizes)``.
    """
    if len(sizes) > layout.per_shard:
        raise ValueError(f"{len(sizes)} chunks for a shard of {layout.per_shard}")
    index = np.full((layout.per_shard, 2), MISSING, dtype=np.uint64)
    pos = layout.index_nbytes if layout.index_at_start else 0
    for k, n in enumerate(sizes):
        if n:
            index[k] = (pos, n)
            pos += n
    data = index.astype(np.dtype("u8").newbyteorder(layout.index_order)).tobytes()
    if layout.index_crc:
        data += google_crc32c.value(data).to_bytes(4, "little")
    return data


def assemble_shard(layout: ShardLayout, chunks: Sequence[bytes | None]) -> bytes | None:
    """The object of one shard from its items' stored bytes (None: not stored).

    ``chunks`` holds at most ``per_shard`` entries (a last, partial shard holds fewer: the
    index still has ``per_shard`` entries, the missing ones marked not stored).

    Returns:
        The bytes of the object, or None when no item is stored (no object is written).
    """
    sizes = [_size(c) for c in chunks]
    if not any(sizes):
        return None
    index = shard_index(layout, sizes)
    body = b"".join(c for c in chunks if c)
    return index + body if layout.index_at_start else body + index


def _copy_range(src: FileRange, dst: int) -> None:
    """Append ``src`` to the file ``dst`` (in the kernel where it can: no user-space copy)."""
    offset, left = src.offset, src.nbytes
    if hasattr(os, "copy_file_range"):
        try:
            while left:
                done = os.copy_file_range(src.fd, dst, left, offset)
                if done == 0:
                    raise OSError(f"stored chunk ends early ({left} bytes missing)")
                offset += done
                left -= done
            return
        except OSError as exc:
            if exc.errno is None or offset != src.offset:
                raise  # a short source, or a failure half-way: not a missing syscall
    while left:
        data = os.pread(src.fd, min(left, 2**24), offset)
        if not data:
            raise OSError(f"stored chunk ends early ({left} bytes missing)")
        os.write(dst, data)
        offset += len(data)
        left -= len(data)


def make_folders(root: Path, folder: Path, made: set[Path] | None = None) -> None:
    """Create ``folder`` (``root`` or a folder inside it), from ``root`` down.

    ``made`` holds folders known to exist (those created are added): a writer of many shards
    then creates each shard's ``c/<shard>/0/...`` folders with one ``mkdir`` each and asks
    nothing about the folders above (``Path.mkdir(parents=True)`` first fails on the
    missing leaf, then climbs).
    """
    made = set() if made is None else made
    if folder in made:
        return
    if root not in made:
        root.mkdir(parents=True, exist_ok=True)
        made.add(root)
    level = root
    for part in folder.relative_to(root).parts:
        level = level / part
        if level not in made:
            with contextlib.suppress(FileExistsError):
                os.mkdir(level)
            made.add(level)


def write_shard(layout: ShardLayout, shard: int, chunks: Sequence[Chunk],
                made: set[Path] | None = None) -> bool:
    """Write one shard object from its items' stored bytes, atomically (temporary name, rename).

    Chunks may be bytes, or ranges of other files (:class:`FileRange`, copied in the kernel
    with ``copy_file_range``). With no item stored, no object is written and an old one of
    that name is removed, as zarr does. ``made``: folders known to exist, kept up to date
    (:func:`make_folders`).

    Returns:
        True when an object was written.
    """
    path = layout.path(shard)
    sizes = [_size(c) for c in chunks]
    if not any(sizes):
        path.unlink(missing_ok=True)
        return False
    index = shard_index(layout, sizes)
    make_folders(layout.root, path.parent, made)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pending: list[bytes] = [index] if layout.index_at_start else []
        for chunk in chunks:
            if isinstance(chunk, FileRange):
                write_all(fd, pending)
                pending = []
                _copy_range(chunk, fd)
            elif chunk:
                pending.append(chunk)
        if not layout.index_at_start:
            pending.append(index)
        write_all(fd, pending)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return True


def write_all(fd: int, parts: Sequence[bytes]) -> None:
    """Write ``parts`` in order with as few system calls as the platform allows."""
    for k in range(0, len(parts), 512):  # IOV_MAX is 1024 on Linux
        batch = list(parts[k:k + 512])
        done = os.writev(fd, batch) if hasattr(os, "writev") else 0
        if done == sum(len(b) for b in batch):  # the usual case: no copy of the bytes
            continue
        rest = memoryview(b"".join(batch))[done:]
        while rest:
            n = os.write(fd, rest)
            rest = rest[n:]
