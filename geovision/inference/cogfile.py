"""Assembling a Cloud Optimized GeoTIFF from tiles GDAL has already compressed.

GDAL's COG driver (and ``COPY_SRC_OVERVIEWS=YES`` of the GTiff driver, as of GDAL 3.10)
decodes its source and encodes every tile again. Here the tiles are written once, by GDAL, into
small tiled GeoTIFFs (one per strip of tiles of each level, see
:mod:`geovision.inference.cogwriter`), and this module lays their compressed bytes out as a COG
without touching them:

    header | GDAL's structural metadata | IFD of full resolution, IFDs of the overviews
           | tiles of the smallest overview ... tiles of full resolution (row-major each)

The full-resolution IFD is a *template* GeoTIFF's, which GDAL wrote with every tag of the output
(georeferencing, GDAL metadata, colour table, nodata) and no tile; each overview IFD holds the
template's storage tags, its own size, ``NewSubfileType = 1`` and its tiles, as GDAL's COG
driver writes them. Each tile is preceded by its size (4 bytes) and followed by a copy of its
last 4 bytes, the layout that GDAL's ghost header announces (``BLOCK_LEADER=SIZE_AS_UINT4``,
``BLOCK_TRAILER=LAST_4_BYTES_REPEATED``) and that GDAL readers use to fetch tiles in one
request.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

#: Bytes per value of each TIFF field type.
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              13: 4, 16: 8, 17: 8, 18: 8}
SHORT, LONG, LONG8 = 3, 4, 16

NEW_SUBFILE_TYPE = 254
IMAGE_WIDTH, IMAGE_LENGTH = 256, 257
TILE_OFFSETS, TILE_BYTE_COUNTS = 324, 325
#: Tags that say how pixels are stored; an overview IFD repeats them from the main one
#: (bits, compression, photometric, samples, planar configuration, predictor, colour map,
#: tile size, extra samples, sample format, JPEG tables, LERC parameters, GDAL's nodata).
STORAGE_TAGS = frozenset({258, 259, 262, 277, 284, 317, 320, 322, 323, 338, 339, 347, 530,
                          532, 50674, 42113})
#: Storage tags that the tiles of every level must share with the template.
MUST_MATCH = (258, 259, 277, 284, 317, 322, 323, 339)

_GHOST = ("LAYOUT=IFDS_BEFORE_DATA\nBLOCK_ORDER=ROW_MAJOR\nBLOCK_LEADER=SIZE_AS_UINT4\n"
          "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\nKNOWN_INCOMPATIBLE_EDITION=NO\n ")
#: Largest classic TIFF written; above it the output is a BigTIFF.
CLASSIC_LIMIT = 2**32 - 2**20


class TiffFormatError(ValueError):
    """A file is not a TIFF this module can read, or its levels do not fit together."""


@dataclass(frozen=True)
class Entry:
    """One IFD entry: tag, field type, value count and the value's bytes (file byte order)."""

    tag: int
    type: int
    count: int
    data: bytes


@dataclass(frozen=True)
class Ifd:
    """The first image directory of a TIFF file, with where its tiles lie in that file."""

    path: Path
    byteorder: str  # "<" or ">"
    bigtiff: bool
    entries: dict[int, Entry]
    offsets: tuple[int, ...] = field(default=())
    counts: tuple[int, ...] = field(default=())

    def value(self, tag: int) -> tuple[int, ...]:
        """An integer-valued tag's values."""
        e = self.entries[tag]
        fmt = {1: "B", 3: "H", 4: "I", 16: "Q"}[e.type]
        return struct.unpack(f"{self.byteorder}{e.count}{fmt}", e.data)

    @property
    def size(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.value(IMAGE_LENGTH)[0], self.value(IMAGE_WIDTH)[0]

    @property
    def tile(self) -> tuple[int, int]:
        """(tile rows, tile cols)."""
        return self.value(323)[0], self.value(322)[0]


def read_ifd(path: str | os.PathLike[str]) -> Ifd:
    """The first IFD of a classic or Big TIFF file.

    Raises:
        TiffFormatError: not a TIFF, or not tiled.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(16)
        if head[:2] not in (b"II", b"MM"):
            raise TiffFormatError(f"{path}: not a TIFF file")
        bo = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(f"{bo}H", head[2:4])[0]
        if magic not in (42, 43):
            raise TiffFormatError(f"{path}: not a TIFF file (magic {magic})")
        big = magic == 43
        first = (struct.unpack(f"{bo}Q", head[8:16])[0] if big
                 else struct.unpack(f"{bo}I", head[4:8])[0])
        f.seek(first)
        n = struct.unpack(f"{bo}{'Q' if big else 'H'}", f.read(8 if big else 2))[0]
        size = 20 if big else 12
        raw = f.read(n * size)
        inline = 8 if big else 4
        entries = {}
        for i in range(n):
            chunk = raw[i * size:(i + 1) * size]
            if big:
                tag, typ, count = struct.unpack(f"{bo}HHQ", chunk[:12])
                val = chunk[12:20]
            else:
                tag, typ, count = struct.unpack(f"{bo}HHI", chunk[:8])
                val = chunk[8:12]
            nbytes = TYPE_SIZES.get(typ, 1) * count
            if nbytes <= inline:
                data = val[:nbytes]
            else:
                f.seek(struct.unpack(f"{bo}{'Q' if big else 'I'}", val)[0])
                data = f.read(nbytes)
            entries[tag] = Entry(tag, typ, count, data)
    ifd = Ifd(path, bo, big, entries)
    if TILE_OFFSETS not in entries:
        raise TiffFormatError(f"{path}: not a tiled TIFF")
    return replace(ifd, offsets=ifd.value(TILE_OFFSETS), counts=ifd.value(TILE_BYTE_COUNTS))


@dataclass(frozen=True)
class Level:
    """One level of the COG: its size and its tiles, row-major, from the strips' files."""

    height: int
    width: int
    tiles: tuple[tuple[Path, int, int], ...]  # (file, offset, byte count) per tile


def stack_strips(strips: Sequence[Ifd], height: int, width: int) -> Level:
    """A level made of strips of whole tile rows, top to bottom (each strip's tiles in order).

    Raises:
        TiffFormatError: the strips do not add up to ``height x width`` in whole tile rows.
    """
    tiles: list[tuple[Path, int, int]] = []
    rows = 0
    for s in strips:
        h, w = s.size
        th = s.tile[0]
        if w != width or (rows + h < height and h % th):
            raise TiffFormatError(f"{s.path}: a strip of {h} x {w} pixels does not fit a "
                                  f"level of {height} x {width} in whole tile rows")
        tiles += [(s.path, o, c) for o, c in zip(s.offsets, s.counts, strict=True)]
        rows += h
    if rows != height:
        raise TiffFormatError(f"strips cover {rows} rows of a level of {height}")
    return Level(height, width, tuple(tiles))


def _check_storage(template: Ifd, strip: Ifd) -> None:
    for tag in MUST_MATCH:
        a, b = template.entries.get(tag), strip.entries.get(tag)
        if (a is None) != (b is None) or (a is not None and b is not None and a.data != b.data):
            raise TiffFormatError(f"{strip.path}: tag {tag} differs from the template's "
                                  f"{template.path}; its tiles would be read wrongly")


def _encode_entry(bo: str, big: bool, e: Entry) -> tuple[bytes, bytes | None]:
    """The entry's bytes with an inline value, or a placeholder and the value to place."""
    inline = 8 if big else 4
    head = (struct.pack(f"{bo}HHQ", e.tag, e.type, e.count) if big
            else struct.pack(f"{bo}HHI", e.tag, e.type, e.count))
    if len(e.data) <= inline:
        return head + e.data.ljust(inline, b"\0"), None
    return head, e.data


def _ints(bo: str, tag: int, typ: int, values: Sequence[int]) -> Entry:
    fmt = {SHORT: "H", LONG: "I", LONG8: "Q"}[typ]
    return Entry(tag, typ, len(values), struct.pack(f"{bo}{len(values)}{fmt}", *values))


def _size_entry(bo: str, tag: int, n: int) -> Entry:
    return _ints(bo, tag, SHORT if n < 2**16 else LONG, [n])


def write_cog(dst: str | os.PathLike[str], template: Ifd, levels: Sequence[Level]) -> None:
    """Write a COG from a template's tags and the compressed tiles of each level.

    Args:
        dst: the file to write (overwritten).
        template: first IFD of a tiled GeoTIFF with the output's size and every tag of the
            full-resolution image (its own tiles are ignored).
        levels: full resolution first, then the overviews, largest first.

    Raises:
        TiffFormatError: a level's tiles were stored otherwise than the template says.
    """
    bo = template.byteorder
    payload = sum(c + 8 for lv in levels for _, _, c in lv.tiles)
    big = template.bigtiff or payload > CLASSIC_LIMIT
    off_type = LONG8 if big else LONG
    th, tw = template.tile
    ifds: list[list[Entry]] = []
    for k, lv in enumerate(levels):
        n_tiles = -(-lv.height // th) * -(-lv.width // tw)
        if len(lv.tiles) != n_tiles:
            raise TiffFormatError(f"level {k}: {len(lv.tiles)} tiles for {n_tiles} places")
        if k == 0:
            tags = {t: e for t, e in template.entries.items()
                    if t not in (TILE_OFFSETS, TILE_BYTE_COUNTS)}
        else:
            tags = {t: e for t, e in template.entries.items() if t in STORAGE_TAGS}
            tags[NEW_SUBFILE_TYPE] = _ints(bo, NEW_SUBFILE_TYPE, LONG, [1])
        tags[IMAGE_WIDTH] = _size_entry(bo, IMAGE_WIDTH, lv.width)
        tags[IMAGE_LENGTH] = _size_entry(bo, IMAGE_LENGTH, lv.height)
        tags[TILE_OFFSETS] = _ints(bo, TILE_OFFSETS, off_type, [0] * n_tiles)
        tags[TILE_BYTE_COUNTS] = _ints(bo, TILE_BYTE_COUNTS, LONG, [c for _, _, c in lv.tiles])
        ifds.append([tags[t] for t in sorted(tags)])

    ghost = f"GDAL_STRUCTURAL_METADATA_SIZE={len(_GHOST):06d} bytes\n{_GHOST}".encode()
    head_size = 16 if big else 8
    pos = _even(head_size + len(ghost))
    entry_size, count_size, next_size = (20, 8, 8) if big else (12, 2, 4)
    ifd_at, value_at = [], []
    for entries in ifds:  # IFD, then its out-of-line values, each on a word boundary
        ifd_at.append(pos)
        pos = _even(pos + count_size + entry_size * len(entries) + next_size)
        where = {}
        for e in entries:
            if len(e.data) > (8 if big else 4):
                where[e.tag] = pos
                pos = _even(pos + len(e.data))
        value_at.append(where)
    # tiles: smallest overview first, full resolution last
    tile_at: list[list[int]] = [[] for _ in levels]
    for k in reversed(range(len(levels))):
        for _, _, c in levels[k].tiles:
            if c == 0:
                tile_at[k].append(0)
                continue
            tile_at[k].append(pos + 4)
            pos += c + 8
    for k, entries in enumerate(ifds):
        ifds[k] = [_ints(bo, TILE_OFFSETS, off_type, tile_at[k]) if e.tag == TILE_OFFSETS
                   else e for e in entries]

    with open(dst, "wb") as out:
        out.write(b"II" if bo == "<" else b"MM")
        out.write(struct.pack(f"{bo}HHHQ", 43, 8, 0, ifd_at[0]) if big
                  else struct.pack(f"{bo}HI", 42, ifd_at[0]))
        out.write(ghost)
        for k, entries in enumerate(ifds):
            _pad_to(out, ifd_at[k])
            nxt = ifd_at[k + 1] if k + 1 < len(ifds) else 0
            out.write(struct.pack(f"{bo}{'Q' if big else 'H'}", len(entries)))
            values = []
            for e in entries:
                raw, value = _encode_entry(bo, big, e)
                if value is not None:
                    at = value_at[k][e.tag]
                    raw += struct.pack(f"{bo}{'Q' if big else 'I'}", at)
                    values.append((at, value))
                out.write(raw)
            out.write(struct.pack(f"{bo}{'Q' if big else 'I'}", nxt))
            for at, value in values:
                _pad_to(out, at)
                out.write(value)
        sources: dict[Path, object] = {}
        try:
            for k in reversed(range(len(levels))):
                for (path, off, count), at in zip(levels[k].tiles, tile_at[k], strict=True):
                    if count == 0:
                        continue
                    src = sources.get(path)
                    if src is None:
                        src = sources[path] = open(path, "rb")
                    src.seek(off)  # type: ignore[attr-defined]
                    data = src.read(count)  # type: ignore[attr-defined]
                    if len(data) != count:
                        raise TiffFormatError(f"{path}: a tile ends past the end of the file")
                    _pad_to(out, at - 4)
                    out.write(struct.pack(f"{bo}I", count))
                    out.write(data)
                    out.write(data[-4:].rjust(4, b"\0"))
        finally:
            for src in sources.values():
                src.close()  # type: ignore[attr-defined]


def _even(n: int) -> int:
    return n + (n & 1)


def _pad_to(out: object, at: int) -> None:
    here = out.tell()  # type: ignore[attr-defined]
    if here > at:
        raise AssertionError(f"layout overlap: at {here}, expected {at}")
    out.write(b"\0" * (at - here))  # type: ignore[attr-defined]


def assemble(dst: str | os.PathLike[str], template: str | os.PathLike[str],
             strips: Sequence[Sequence[str | os.PathLike[str]]],
             shapes: Sequence[tuple[int, int]]) -> None:
    """Write ``dst`` as a COG from a template and the strip files of each level, atomically.

    Args:
        dst: the COG; it appears only once complete.
        template: the tiled GeoTIFF whose tags the full-resolution image keeps.
        strips: per level (full resolution first), its strip files top to bottom.
        shapes: per level, its (rows, cols).

    Raises:
        TiffFormatError: the strips do not fit the levels, or were stored otherwise.
    """
    tpl = read_ifd(template)
    if 284 in tpl.entries and tpl.value(284)[0] != 1:
        raise TiffFormatError(f"{template}: band-interleaved tiles; write pixel-interleaved "
                              "strips (INTERLEAVE=PIXEL)")
    levels = []
    for files, (h, w) in zip(strips, shapes, strict=True):
        ifds = [read_ifd(p) for p in files]
        for ifd in ifds:
            _check_storage(tpl, ifd)
        levels.append(stack_strips(ifds, h, w))
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        write_cog(tmp, tpl, levels)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
