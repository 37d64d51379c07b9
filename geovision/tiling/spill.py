"""The one-pass tiling pass through spill files: for Dask clusters and split-border drops.

Where tiles cannot be committed in order by one process (a distributed scheduler, whose
workers share only the storage), or where a tile's final index is not known before every
block is read (tiles on split-block borders may be left out), each block task writes its
encoded chunks to a *spill* file, in kept-tile order, and its figures to a marker::

    pass/block-<i>.bin   chunk bytes, concatenated
    pass/block-<i>.npz   tiles (candidate indices), valid (float32 per candidate), kept (bool
                         per candidate), spans (per kept tile: offset, nbytes of the image
                         chunk, offset, nbytes of the mask chunk; nbytes 0 = not stored) and
                         the kept tiles' figures (``f_*``, :class:`TileFigures`)

both under temporary names then renamed, the marker last (a block with a marker is done).
Once the final tiles are known, shard tasks (:func:`run_shards`) copy each shard's chunks
from the spill files into one object with ``copy_file_range`` (in the kernel: no decoding,
no encoding, no copy through Python) and leave ``shard-<k>.done``. Costs one more write of
the encoded data than the ordered pass (:mod:`geovision.tiling.ordered`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geovision.tiling.encode import BlockJob, TileFigures, encode_block, save_npz
from geovision.tiling.shards import FileRange, ShardLayout, write_all, write_shard


def block_paths(progress: str | os.PathLike[str], index: int) -> tuple[Path, Path]:
    """Spill file and marker of block ``index``."""
    base = Path(progress) / "pass" / f"block-{index:06d}"
    return base.with_suffix(".bin"), base.with_suffix(".npz")


def done_path(progress: str | os.PathLike[str], shard: int) -> Path:
    """The mark of a written shard."""
    return Path(progress) / f"shard-{shard:06d}.done"


def run_block(job: BlockJob, progress: str) -> int:
    """Encode one block; write its spill file and marker. Returns its candidate tiles."""
    result = encode_block(job)
    spans = np.zeros((len(result.chunks), 4), dtype=np.uint64)
    parts: list[bytes] = []
    pos = 0
    for j, chunks in enumerate(result.chunks):
        for col, chunk in zip((0, 2), chunks, strict=True):
            if chunk:
                spans[j, col:col + 2] = (pos, len(chunk))
                parts.append(chunk)
                pos += len(chunk)
    spill, marker = block_paths(progress, job.index)
    spill.parent.mkdir(parents=True, exist_ok=True)
    tmp = spill.with_name(f".{spill.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, parts)
    finally:
        os.close(fd)
    os.replace(tmp, spill)
    save_npz(marker, {"tiles": result.tiles, "valid": result.valid, "kept": result.kept,
                      "spans": spans, **result.figures.to_arrays("f_")})
    return len(result.tiles)


def load_block(progress: str | os.PathLike[str], index: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, TileFigures]:
    """(tiles, valid, kept, spans, figures) of a finished block."""
    with np.load(block_paths(progress, index)[1]) as m:
        return (m["tiles"], m["valid"], m["kept"], m["spans"],
                TileFigures.from_arrays(m, "f_"))


@dataclass(frozen=True)
class ShardsJob:
    """A range of final shards and, per final tile of it, where its chunks lie.

    Attributes:
        progress: directory of the spill files.
        shards: first and last + 1 shard index.
        first: final index of the first tile of the range.
        block: spill file (block index) of each tile.
        spans: (offset, nbytes) of its image and mask chunks there.
        image: layout of ``image``.
        mask: layout of ``mask`` (segmentation).
    """

    progress: str
    shards: tuple[int, int]
    first: int
    block: np.ndarray
    spans: np.ndarray
    image: ShardLayout
    mask: ShardLayout | None


def run_shards(job: ShardsJob) -> int:
    """Write a range of shards from the spill files; mark each done. Returns its tiles."""
    fds: dict[int, int] = {}

    def chunk(t: int, col: int) -> FileRange | None:
        offset, nbytes = int(job.spans[t, col]), int(job.spans[t, col + 1])
        if nbytes == 0:
            return None
        blk = int(job.block[t])
        if blk not in fds:
            fds[blk] = os.open(block_paths(job.progress, blk)[0], os.O_RDONLY)
        return FileRange(fds[blk], offset, nbytes)

    per = job.image.per_shard
    written = 0
    made: set[Path] = set()
    try:
        for shard in range(*job.shards):
            lo = shard * per - job.first
            hi = min(lo + per, len(job.block))
            write_shard(job.image, shard, [chunk(t, 0) for t in range(lo, hi)], made)
            if job.mask is not None:
                write_shard(job.mask, shard, [chunk(t, 2) for t in range(lo, hi)], made)
            done_path(job.progress, shard).touch()
            written += hi - lo
    finally:
        for fd in fds.values():
            os.close(fd)
    return written
