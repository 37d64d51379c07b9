"""Which tiles a dataset holds: candidate windows, their valid fraction, and their split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from dask.delayed import Delayed
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from geovision.cluster import task
from geovision.geo.raster import RasterInfo, absolute, cached_open, valid_mask
from geovision.geo.windows import PixelWindow, tile_grid

#: Split code of a tile left out because it reaches into a block of another split; such
#: tiles are dropped before the store is written, so the code is never stored.
DROPPED_SPLIT = 255


@dataclass(frozen=True)
class TileRef:
    """One tile: index of its source raster and its window there."""

    source: int
    window: PixelWindow


def candidate_tiles(sources: Sequence[RasterInfo], size: int, stride: int) -> list[TileRef]:
    """Every window of the grid over every source, sources in order, rows then columns."""
    return [
        TileRef(i, w) for i, src in enumerate(sources) for w in tile_grid(
            src.height, src.width, size, stride)
    ]


def row_runs(refs: Sequence[TileRef], max_run: int) -> list[list[int]]:
    """Group tile indices into runs of consecutive tiles on one source row (<= max_run each).

    A run is read as one window: overlapping tiles share their pixels, and one read of a strip
    costs less than many small ones.
    """
    runs: list[list[int]] = []
    for i, ref in enumerate(refs):
        last = refs[runs[-1][-1]] if runs else None
        if (
            last is not None and len(runs[-1]) < max_run and last.source == ref.source
            and last.window.row == ref.window.row and last.window.col < ref.window.col
        ):
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def run_window(refs: Sequence[TileRef], run: Sequence[int]) -> PixelWindow:
    """The smallest window holding every tile of a run."""
    first, last = refs[run[0]].window, refs[run[-1]].window
    return PixelWindow(first.row, first.col, first.height, last.col + last.width - first.col)


def _valid_fractions(path: str, bands: Sequence[int], windows: Sequence[PixelWindow]
                     ) -> np.ndarray:
    """Valid fraction of each window of one run (consecutive windows of a row)."""
    span = PixelWindow(windows[0].row, windows[0].col, windows[0].height,
                       windows[-1].col + windows[-1].width - windows[0].col)
    ds = cached_open(path)
    window = Window(span.col, span.row, span.width, span.height)
    needs_data = np.dtype(ds.dtypes[0]).kind == "f" or (
        ds.nodata is not None and all(f == [MaskFlags.nodata] for f in ds.mask_flag_enums))
    data = ds.read(list(bands), window=window) if needs_data else None
    mask = valid_mask(ds, bands, window, data)
    # Every window spans the run's rows: count valid pixels per column, then sum columns.
    per_col = np.concatenate([[0], np.cumsum(mask.sum(axis=0, dtype=np.int64))])
    out = np.empty(len(windows), dtype=np.float32)
    for k, w in enumerate(windows):
        c0 = w.col - span.col
        out[k] = (per_col[c0 + w.width] - per_col[c0]) / (w.height * w.width)
    return out


def valid_fraction_tasks(
    sources: Sequence[RasterInfo], bands: Sequence[int], refs: Sequence[TileRef]
) -> tuple[list[Delayed], list[list[int]], list[int]]:
    """Dask tasks giving the valid fraction of every candidate tile.

    Sources that GDAL reports all-valid need no reading: their tiles are 1.0.

    Returns:
        (tasks, the runs of tile indices they cover, tile weight of each task)
    """
    tasks: list[Delayed] = []
    runs: list[list[int]] = []
    weights: list[int] = []
    for run in row_runs(refs, max_run=64):
        src = sources[refs[run[0]].source]
        if src.all_valid and np.dtype(src.dtype).kind != "f":
            continue
        windows = tuple(refs[i].window for i in run)
        tasks.append(task(f"valid-{len(tasks)}", _valid_fractions, absolute(src.path),
                          tuple(bands), windows))
        runs.append(run)
        weights.append(len(run))
    return tasks, runs, weights


def assign_splits(
    refs: Sequence[TileRef],
    *,
    method: str,
    fractions: Sequence[float],
    block_size: int,
    seed: int,
) -> tuple[np.ndarray, int]:
    """Give each tile a split: 0 train, 1 val, 2 test.

    ``block``: the sources are cut into square blocks of ``block_size`` pixels; the blocks are
    shuffled with ``seed`` and dealt to the splits in proportion to ``fractions``; a tile goes
    to the block holding its centre. A tile that reaches into a block of another split would
    share pixels across splits, so it is left out (marked :data:`DROPPED_SPLIT`). ``random``:
    each tile draws its split independently.

    Returns:
        (split per tile, tiles left out on block borders)
    """
    rng = np.random.default_rng(seed)
    probs = np.asarray(fractions, dtype=np.float64)
    probs = probs / probs.sum()
    if method == "random":
        return rng.choice(3, size=len(refs), p=probs).astype(np.uint8), 0

    def block_of(ref: TileRef, dr: int, dc: int) -> tuple[int, int, int]:
        w = ref.window
        return (ref.source, (w.row + dr) // block_size, (w.col + dc) // block_size)

    centre_blocks = [block_of(r, r.window.height // 2, r.window.width // 2) for r in refs]
    blocks = sorted(set(centre_blocks))
    order = rng.permutation(len(blocks))
    counts = _deal(len(blocks), probs)
    block_split: dict[tuple[int, int, int], int] = {}
    pos = 0
    for split, n in enumerate(counts):
        for j in order[pos:pos + n]:
            block_split[blocks[j]] = split
        pos += n
    splits = np.array([block_split[b] for b in centre_blocks], dtype=np.uint8)
    dropped = 0
    for i, ref in enumerate(refs):
        w = ref.window
        corners = {block_of(ref, dr, dc) for dr in (0, w.height - 1) for dc in (0, w.width - 1)}
        r0, c0 = min(b[1] for b in corners), min(b[2] for b in corners)
        r1, c1 = max(b[1] for b in corners), max(b[2] for b in corners)
        touched = {
            block_split.get((ref.source, r, c), splits[i])
            for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)
        }
        if len(touched) > 1:
            splits[i] = DROPPED_SPLIT
            dropped += 1
    return splits, dropped


def _deal(n: int, probs: np.ndarray) -> list[int]:
    """Split n blocks by probabilities; a split with a share gets a block when n allows."""
    counts = np.floor(probs * n).astype(int)
    wanted = probs > 0
    while counts.sum() < n:
        counts[np.argmax(probs * n - counts)] += 1
    for k in range(3):
        if wanted[k] and counts[k] == 0 and n >= int(wanted.sum()):
            donor = int(np.argmax(counts))
            counts[donor] -= 1
            counts[k] += 1
    return [int(c) for c in counts]
