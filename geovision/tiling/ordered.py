"""The one-pass tiling pass for local runs: kept tiles written straight into their final shards.

When no tile can be left out on a split-block border (``--split random``, or every candidate
tile lies inside one split block: see :func:`borders_possible`), a kept tile's final index is
the number of kept tiles before it in candidate order. Blocks are encoded on a pool of
threads (:func:`geovision.tiling.encode.encode_block`: GDAL decoding, numcodecs and most of
numpy release the GIL) and committed in block order by this thread: each block's kept tiles
take the next indices, and every shard that fills up is written at once as one object
(:func:`geovision.tiling.shards.write_shard`). The blocks of the group being committed and
``workers + 1`` more are in flight, so memory stays bounded. The last, partial shard is
written by :meth:`OrderedShards.finish` once the tile count is known (it decides the shard
size of a dataset smaller than a shard).

Resume: after committing group ``k`` a marker ``pass/group-<k>.npz`` records its valid
fractions, its kept tiles' figures, the kept tiles before it and the tiles now in written
shards (``written``). A resumed run keeps the longest run of markers from group 0, and
encodes again from the first group holding a tile at or past ``written`` (the tiles of the
shard that was filling up when the run was killed); shards are rewritten identically.

Blocks may split a row of tiles into column blocks (memory per task stays bounded); the
column blocks of one row form a *group*, committed together, tiles in candidate order, so
the committing thread holds at most one row of blocks' encoded tiles.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from geovision.progress import progress_bar
from geovision.tiling.encode import BlockJob, BlockResult, TileFigures, encode_block, save_npz
from geovision.tiling.plan import TileRef
from geovision.tiling.shards import ShardLayout, write_shard
from geovision.tiling.spill import done_path


def borders_possible(refs: Sequence[TileRef], split: str, block_size: int) -> bool:
    """Whether some candidate tile reaches over a split-block border (it could be left out).

    A tile ``[r, r + h) x [c, c + w)`` lies in one block when ``r // B == (r + h - 1) // B``
    and likewise for columns (``B`` = ``block_size``); with ``--split random`` no tile is
    ever left out.
    """
    if split != "block" or not refs:
        return False
    w = np.array([(r.window.row, r.window.col, r.window.height, r.window.width) for r in refs])
    rows = w[:, 0] // block_size != (w[:, 0] + w[:, 2] - 1) // block_size
    cols = w[:, 1] // block_size != (w[:, 1] + w[:, 3] - 1) // block_size
    return bool((rows | cols).any())


class OrderedShards:
    """Chunks of consecutive final tiles, written shard by shard as shards fill up.

    Each shard written leaves an empty ``shard-<k>.done`` in ``progress``
    (:func:`geovision.tiling.spill.done_path`, as the spill pass does): a mark of progress
    for whoever watches the run (a resumed run goes by the group markers).

    Args:
        image: layout of ``image`` (its ``root`` is where shards go).
        mask: layout of ``mask``, or None.
        progress: the run's progress directory, or None for no marks.
        written: tiles already in written shards (a multiple of the shard size).
    """

    def __init__(self, image: ShardLayout, mask: ShardLayout | None,
                 progress: Path | None = None, written: int = 0) -> None:
        self.image, self.mask, self.progress = image, mask, progress
        self.written = written
        self.made: set[Path] = set()  # folders of shards made by this writer
        self.pending: list[tuple[bytes | None, bytes | None]] = []

    def add(self, first: int, chunks: Sequence[tuple[bytes | None, bytes | None]]) -> None:
        """Append the chunks of tiles ``first, first + 1, ...``; write every full shard.

        Tiles below :attr:`written` are in written shards already and are skipped.
        """
        per = self.image.per_shard
        skip = max(0, self.written - first)
        if first + skip != self.written + len(self.pending):
            raise ValueError(f"tile {first + skip} added out of order")
        self.pending.extend(chunks[skip:])
        while len(self.pending) >= per:
            self._write(self.written // per, self.pending[:per], self.image, self.mask)
            self.written += per
            self.pending = self.pending[per:]

    def finish(self, image: ShardLayout, mask: ShardLayout | None) -> None:
        """Write the last, partial shard with the final layouts (its index holds their size)."""
        if self.pending:
            shard, rest = divmod(self.written, image.per_shard)
            if rest:
                raise ValueError("written tiles do not fill whole shards of the final size")
            self._write(shard, self.pending, image, mask)
            self.written += len(self.pending)
            self.pending = []

    def _write(self, shard: int, chunks: list[tuple[bytes | None, bytes | None]],
               image: ShardLayout, mask: ShardLayout | None) -> None:
        write_shard(image, shard, [c[0] for c in chunks], self.made)
        if mask is not None:
            write_shard(mask, shard, [c[1] for c in chunks], self.made)
        if self.progress is not None:
            done_path(self.progress, shard).touch()


@dataclasses.dataclass
class PassResult:
    """What the pass learnt of every block group, in order (each group's tiles ascending)."""

    tiles: list[np.ndarray]
    valid: list[np.ndarray]
    kept: list[np.ndarray]
    figures: list[TileFigures]
    shards: OrderedShards


def marker_path(progress: Path, index: int) -> Path:
    """The marker of committed group ``index``."""
    return progress / "pass" / f"group-{index:06d}.npz"


def merge_results(results: Sequence[BlockResult]) -> BlockResult:
    """The blocks of one group as one result, tiles (and kept tiles) in candidate order."""
    if len(results) == 1:
        return results[0]
    tiles = np.concatenate([r.tiles for r in results])
    order = np.argsort(tiles, kind="stable")
    kept_tiles = np.concatenate([r.tiles[r.kept] for r in results])
    kept_order = np.argsort(kept_tiles, kind="stable")
    chunks = [c for r in results for c in r.chunks]
    parts = [r.figures for r in results]
    figures = TileFigures.concat(parts, parts[0].count.shape[1],
                                 parts[0].class_counts.shape[1]).take(kept_order)
    return BlockResult(
        tiles=tiles[order], valid=np.concatenate([r.valid for r in results])[order],
        kept=np.concatenate([r.kept for r in results])[order],
        chunks=[chunks[i] for i in kept_order], figures=figures)


def ordered_pass(
    groups: Sequence[Sequence[BlockJob]], *, progress: Path, image: ShardLayout,
    mask: ShardLayout | None, workers: int, quiet: bool = False,
) -> PassResult:
    """Encode every block on ``workers`` threads and commit them in order (module docstring).

    Args:
        groups: the blocks, grouped so that each group's tiles are consecutive in candidate
            order (the column blocks of one row of blocks), groups in candidate order.
        progress: the run's progress directory (markers).
        image: layout of ``image``, rooted in the store being written.
        mask: likewise for ``mask``, or None.
        workers: threads encoding blocks.
        quiet: no progress bar.

    Returns:
        Valid fractions, kept flags and figures per group, and the writer holding the
        tiles of the last, partial shard (see :meth:`OrderedShards.finish`).
    """
    out = PassResult([], [], [], [], OrderedShards(image, mask, progress))
    written = 0
    for k in range(len(groups)):  # resume: the committed groups, from the first on
        path = marker_path(progress, k)
        if not path.exists():
            break
        with np.load(path) as m:
            out.tiles.append(m["tiles"])
            out.valid.append(m["valid"])
            out.kept.append(m["kept"])
            out.figures.append(TileFigures.from_arrays(m, "f_"))
            written = int(m["written"])
    starts = np.cumsum([0] + [int(k.sum()) for k in out.kept])
    start = int(np.searchsorted(starts[1:], written, side="right"))  # first group past written
    del out.tiles[start:], out.valid[start:], out.kept[start:], out.figures[start:]
    kept_before = int(starts[start])
    out.shards = OrderedShards(image, mask, progress, written=written)
    for k in range(start, len(groups)):
        marker_path(progress, k).unlink(missing_ok=True)

    jobs = [(k, job) for k in range(start, len(groups)) for job in groups[k]]
    with ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(workers))
        # The bar starts with the first commit: an error before it (say, in the labels the
        # first block waits for) is then the only thing printed.
        bar: Any = None
        inflight: deque[tuple[int, Future[BlockResult]]] = deque()
        submitted = 0
        try:
            for k in range(start, len(groups)):
                # keep every block of this group and ``workers`` more in flight
                while submitted < len(jobs) and (
                        jobs[submitted][0] == k or len(inflight) <= workers):
                    inflight.append((jobs[submitted][0], pool.submit(encode_block,
                                                                     jobs[submitted][1])))
                    submitted += 1
                results = []
                while inflight and inflight[0][0] == k:
                    results.append(inflight.popleft()[1].result())
                kept_before = _commit(out, merge_results(results), k, kept_before, progress)
                if bar is None:
                    bar = stack.enter_context(progress_bar(
                        total=sum(len(j.block.tiles) for _, j in jobs), desc="tiles",
                        unit="tile", disable=quiet))
                bar.update(sum(len(j.block.tiles) for j in groups[k]))
        except BaseException:
            for _, f in inflight:
                f.cancel()
            raise
    return out


def _commit(out: PassResult, result: BlockResult, index: int, kept_before: int,
            progress: Path) -> int:
    """Add a group's kept tiles to the shards, record its marker; return the kept count."""
    out.shards.add(kept_before, result.chunks)
    out.tiles.append(result.tiles)
    out.valid.append(result.valid)
    out.kept.append(result.kept)
    out.figures.append(result.figures)
    save_npz(marker_path(progress, index), {
        "tiles": result.tiles, "valid": result.valid, "kept": result.kept,
        "kept_before": np.int64(kept_before), "written": np.int64(out.shards.written),
        **result.figures.to_arrays("f_"),
    })
    return kept_before + len(result.chunks)
