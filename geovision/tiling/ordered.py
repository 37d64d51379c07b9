"""The one-pass tiling pass for local runs: kept tiles written straight into their final shards.

When no tile can be left out on a split-block border (``--split random``, or every candidate
tile lies inside one split block: see :func:`borders_possible`), a kept tile's final index is
the number of kept tiles before it in candidate order. Blocks are encoded on a pool of
threads (:func:`geovision.tiling.encode.encode_block`: GDAL decoding, numcodecs and most of
numpy release the GIL) and committed in block order by this thread: each block's kept tiles
take the next indices, and every shard that fills up is written as one object
(:func:`geovision.tiling.shards.write_shard`) by a writer thread, in order, while this thread
goes on (:class:`OrderedShards`). The blocks of the group being committed and
``workers + 1`` more are in flight, and at most one committed group waits to be written,
so memory stays bounded. The last, partial shard is
written by :meth:`OrderedShards.finish` once the tile count is known (it decides the shard
size of a dataset smaller than a shard).

Resume: after committing group ``k`` a marker ``pass/group-<k>.npz`` records its valid
fractions, its kept tiles' figures, the kept tiles before it and the tiles now in written
shards (``written``). A resumed run keeps the longest run of markers from group 0, and
encodes again from the first group holding a tile at or past ``written`` (the tiles of the
shard that was filling up when the run was killed); shards are rewritten identically.

Blocks may split a row of tiles into column blocks (memory per task stays bounded); the
column blocks of one row form a *group*, committed together, tiles in candidate order, so
the pass holds at most two rows of blocks' encoded tiles (one committed, one being written).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
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


#: Groups whose shards may wait for the writer thread while the committing thread goes on
#: (each holds one row of blocks' encoded tiles); 2 gave no shorter end of the pass than 1.
QUEUED_GROUPS = 1


class OrderedShards:
    """Chunks of consecutive final tiles, written shard by shard as shards fill up.

    Full shards are written on a thread of their own, in order, so the committing thread
    goes on (at the end of the pass: to the selection and the arrays) while the last
    groups' shards are written; what one :meth:`add` hands over (its shards, then its
    ``after``, a group's marker) is written before the next. At most
    :data:`QUEUED_GROUPS` additions wait; a write that failed raises in the next
    :meth:`add`, :meth:`wait` or :meth:`finish`. :meth:`close` stops the thread.

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
        self.written = written  # tiles in shards written or handed to the writer
        self.made: set[Path] = set()  # folders of shards made by the writer
        self.pending: list[tuple[bytes | None, bytes | None]] = []
        self._writer: ThreadPoolExecutor | None = None
        self._queued: deque[Future[None]] = deque()

    def add(self, first: int, chunks: Sequence[tuple[bytes | None, bytes | None]],
            after: Callable[[int], None] | None = None) -> None:
        """Append the chunks of tiles ``first, first + 1, ...``; write every full shard.

        Tiles below :attr:`written` are in written shards already and are skipped.
        ``after(written)`` runs on the writer once these shards are written (``written``:
        the tiles then in written shards).
        """
        per = self.image.per_shard
        skip = max(0, self.written - first)
        if first + skip != self.written + len(self.pending):
            raise ValueError(f"tile {first + skip} added out of order")
        self.pending.extend(chunks[skip:])
        full = []
        while len(self.pending) >= per:
            full.append((self.written // per, self.pending[:per]))
            self.written += per
            self.pending = self.pending[per:]
        while len(self._queued) >= QUEUED_GROUPS:
            self._queued.popleft().result()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="shards")
        self._queued.append(self._writer.submit(self._write_all, full, after, self.written))

    def _write_all(self, full: list[tuple[int, list[tuple[bytes | None, bytes | None]]]],
                   after: Callable[[int], None] | None, written: int) -> None:
        for shard, chunks in full:
            self._write(shard, chunks, self.image, self.mask)
        if after is not None:
            after(written)

    def wait(self) -> None:
        """Wait until every shard handed over is written (raise what a write raised)."""
        while self._queued:
            self._queued.popleft().result()

    def close(self) -> None:
        """Drop the writes not started, wait for the one running, stop the writer thread."""
        if self._writer is not None:
            self._writer.shutdown(wait=True, cancel_futures=True)
            self._writer = None
        self._queued.clear()

    def finish(self, image: ShardLayout, mask: ShardLayout | None) -> None:
        """Write the last, partial shard with the final layouts (its index holds their size).

        Waits for the full shards first (:meth:`wait`).
        """
        self.wait()
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
        tiles of the last, partial shard, its last groups' shards maybe still being written
        (see :meth:`OrderedShards.finish`; the caller closes it).
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
            out.shards.close()
            raise
    return out


def _commit(out: PassResult, result: BlockResult, index: int, kept_before: int,
            progress: Path) -> int:
    """Add a group's kept tiles to the shards, its marker after them; return the kept count."""
    out.tiles.append(result.tiles)
    out.valid.append(result.valid)
    out.kept.append(result.kept)
    out.figures.append(result.figures)
    arrays = {"tiles": result.tiles, "valid": result.valid, "kept": result.kept,
              "kept_before": np.int64(kept_before), **result.figures.to_arrays("f_")}

    def marker(written: int) -> None:
        save_npz(marker_path(progress, index), {**arrays, "written": np.int64(written)})

    out.shards.add(kept_before, result.chunks, after=marker)
    return kept_before + len(result.chunks)
