"""``tile()``: the library function behind ``geovision tile``, one pass over the sources.

Every source pixel is decoded once and shards are written as bytes:

1. **blocks** (:mod:`~geovision.tiling.blocks`): candidate tiles grouped into windows that
   follow the sources' storage blocks, each read once;
2. **pass**: each block is read, its tiles' valid fractions measured, labels burned once per
   block (:mod:`~geovision.tiling.burn`), the kept tiles' chunks encoded with the store's
   codecs (:mod:`~geovision.tiling.shards`) and their figures computed
   (:mod:`~geovision.tiling.encode`). Locally, blocks are committed in order straight into
   their final shards (:mod:`~geovision.tiling.ordered`); on a Dask cluster, or when tiles on
   split-block borders may be left out, through spill files (:mod:`~geovision.tiling.spill`);
3. **selection**: the measured fractions decide the tiles (``--min-valid``), then the splits
   (:func:`~geovision.tiling.plan.assign_splits`, tiles on split-block borders left out);
4. **arrays**: the tile arrays and the tile plan are created (``store.create_tile_arrays``);
   the last shard (ordered pass) or every shard (spill pass) is written;
5. **finish**: attributes from the tiles' figures in memory
   (:mod:`~geovision.tiling.summary`), and the store renamed to its final name
   (``store.commit_store``).

A killed run resumes (``resume=True``) from the markers of the pass; the selection is
recomputed (it is deterministic); the arrays are created again unless ``arrays.done`` says
they were. Memory per task is bounded by :data:`BLOCK_BUDGET` and GDAL's block cache by
:data:`CACHE_BYTES`; the ordered pass also holds two rows of blocks' encoded tiles, so rows of
more than :data:`ORDERED_ROW_BUDGET` bytes go through spill files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import zarr
from zarr.storage import MemoryStore

from geovision.cluster import dask_client, default_workers, run_graph, task
from geovision.errors import GeovisionError, InputError, OutputExistsError
from geovision.formats import IGNORE_INDEX
from geovision.geo.paths import remote_env
from geovision.geo.raster import RasterInfo, absolute, close_cached, open_raster
from geovision.geo.scenes import SceneSource, scenes_for
from geovision.locks import output_lock
from geovision.options.tile import TileOptions
from geovision.ownership import check_removable, check_writable, remove_owned
from geovision.tiling.blocks import BLOCK_BUDGET, Block, plan_blocks
from geovision.tiling.encode import BlockJob, TileFigures
from geovision.tiling.labels import (
    LateLabels,
    PlacedArea,
    PlacedLabels,
    block_area,
    read_area,
    read_placed,
)
from geovision.tiling.ordered import borders_possible, ordered_pass
from geovision.tiling.plan import DROPPED_SPLIT, TileRef, assign_splits, candidate_tiles
from geovision.tiling.shards import ShardLayout, shard_layout
from geovision.tiling.spill import (
    ShardsJob,
    block_paths,
    done_path,
    load_block,
    run_block,
    run_shards,
)
from geovision.tiling.store import (
    PENDING_ATTR,
    PROGRESS_DIR,
    check_pending,
    claim_store,
    commit_store,
    create_tile_arrays,
    is_complete,
    is_store,
    open_group,
    partial_path,
    write_tile_arrays,
)
from geovision.tiling.summary import summarize
from geovision.tiling.tasks import for_task

log = logging.getLogger(__name__)

#: GDAL block cache while tiling (bytes; GDAL_CACHEMAX in the environment wins). Blocks are
#: read once, so the cache only needs to hold what one read decodes; GDAL's rasterize also
#: works in strips of this many bytes, so it must hold a block's mask.
CACHE_BYTES = 64 * 2**20
#: Raw bytes of one row of blocks above which the ordered pass is not used (it holds one
#: row's encoded tiles while the row is committed, and the row before while it is written).
ORDERED_ROW_BUDGET = 128 * 2**20
#: Shards per shard task (spill pass).
SHARDS_PER_TASK = 8
_TILE_ARRAYS = ("image", "mask", "label", "source", "row", "col", "transform", "valid", "split")


def tile(
    rasters: Sequence[str | os.PathLike[str]],
    labels: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: TileOptions | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    quiet: bool = False,
    ordered: bool | None = None,
) -> Path:
    """Cut rasters and their vector labels into a Zarr tile dataset (see the module docstring).

    Args:
        rasters: raster files, globs, folders, STAC items (paths or URLs), GDAL paths and
            URLs (see :func:`geovision.geo.scenes.resolve_scenes`); ``options.stack`` adds
            scenes made of band files.
        labels: a vector file OGR reads.
        out: the Zarr store to write (a directory).
        options: how to cut; see :class:`TileOptions`.
        scheduler: Dask scheduler address; None runs on local threads.
        workers: local threads (None: every core).
        overwrite: replace an existing store.
        resume: finish an interrupted run of the same command, or do nothing if complete.
        quiet: no progress bar.
        ordered: force the ordered pass (True) or the spill pass (False); None chooses (the
            ordered pass for local runs where no tile can be left out on a split border).

    Returns:
        The path of the finished store.

    Raises:
        GeovisionError: bad input, with a message naming the file or option (nothing written).
    """
    opts = options or TileOptions()
    opts.check()
    out = Path(out)
    scenes = scenes_for(rasters, opts)
    inputs = [*rasters, labels, *(f for sc in scenes for f in sc.files)]  # as given first
    if not out.name or out.name in (".", ".."):  # before the lock file is made beside it
        check_removable(out, inputs=inputs, kind="dir", option="--output")
    with output_lock(out, option="--output"), _collector_skips_heap():
        _check_output(out, inputs, overwrite=overwrite)
        return _tile_checked(scenes, labels, out, opts, scheduler=scheduler, workers=workers,
                             overwrite=overwrite, resume=resume, quiet=quiet, ordered=ordered)


@contextmanager
def _collector_skips_heap() -> Iterator[None]:
    """Keep the objects alive now out of the garbage collector's walks while the block runs.

    A full collection walks every tracked object: in a process holding the heap of GDAL,
    pandas, zarr and torch modules, one took 50 ms, every thread stalled, while a run made
    its label mappings. ``gc.freeze`` moves the objects alive now aside (a list splice, no
    walk) and ``gc.unfreeze`` puts them back; cycles among them are collected after. Nothing
    is done when objects are frozen already (by the caller, or a run in another thread).
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _check_output(out: Path, inputs: list[Any], *, overwrite: bool) -> None:
    """Refuse, before any work, an output that cannot be written or must not be replaced.

    Raises:
        OutputError: ``out`` (or its ``.partial``) is a file, not writable, a link, the
            current folder or a parent of it, holds an input, or holds files geovision did
            not write (``--overwrite`` deletes only a tile store geovision wrote).
    """
    check_writable(out, kind="dir", option="--output")
    for path in (out, partial_path(out)):
        if path.is_symlink() or (path.exists() and not is_store(path)):
            check_removable(path, inputs=inputs, kind="dir", option="--output")
        elif path.exists() and overwrite:
            claim_store(path)  # a store of an older geovision, without a mark, is taken up
            check_removable(path, inputs=inputs, kind="dir", option="--output")


def _tile_checked(scenes: list[SceneSource], labels: str | os.PathLike[str], out: Path,
                  opts: TileOptions, *, scheduler: str | None, workers: int | None,
                  overwrite: bool, resume: bool, quiet: bool, ordered: bool | None) -> Path:
    """:func:`tile` once its output is checked and locked."""
    partial = partial_path(out)
    if out.exists() and not overwrite:
        if resume and is_complete(out):
            log.info("%s: complete already; nothing to do", out)
            return out
        if not resume:
            raise OutputExistsError(f"{out}: exists; use --overwrite to replace it or "
                                    "--resume to finish an interrupted run")
    if partial.exists() and not (resume or overwrite):
        raise OutputExistsError(f"{partial}: an interrupted run left this; use --resume to "
                                "finish it or --overwrite to start again")

    sources = [open_raster(s.path) for s in scenes]
    bands, band_names = _check_scenes(scenes, opts)
    area = read_area(opts, sources)
    dtype = str(np.result_type(*[np.dtype(s.dtype) for s in sources]))
    fill = _fill(sources[0], dtype)
    layouts = _layouts(len(bands), opts, dtype, fill)
    return _tile(scenes, sources, bands, band_names, labels, area, out, opts,
                 (dtype, fill, layouts), scheduler=scheduler, workers=workers, resume=resume,
                 quiet=quiet, ordered=ordered)


def _check_scenes(scenes: list[SceneSource], opts: TileOptions) -> tuple[list[int],
                                                                           list[str]]:
    """The bands every scene reads (1-based, in ``path``) and their names in the store.

    Raises:
        InputError: the scenes read different bands, or ``--band-names`` does not fit.
    """
    counts = {len(s.bands) for s in scenes}
    if len(counts) > 1:
        listing = ", ".join(f"{s.name}: {len(s.bands)}" for s in scenes)
        raise InputError(f"rasters have different band counts ({listing}); tile them "
                         "separately or pick common bands with --bands or --assets")
    if len({s.bands for s in scenes}) > 1:
        listing = "; ".join(f"{s.name}: {','.join(map(str, s.bands))}" for s in scenes)
        raise InputError(f"--assets picks different bands of each raster ({listing}); tile "
                         "rasters whose bands are in one order together")
    names = list(scenes[0].band_names)
    if opts.band_names is not None:
        if len(opts.band_names) != len(names):
            raise InputError(f"--band-names: {len(opts.band_names)} name(s) for "
                             f"{len(names)} band(s) ({', '.join(names)}); give one name per "
                             "band read")
        names = list(opts.band_names)
    if len(set(names)) < len(names):
        raise InputError(f"band names {', '.join(names)} repeat; the model finds bands by "
                         "name, so give distinct ones with --band-names")
    return list(scenes[0].bands), names


def _fill(src: RasterInfo, dtype: str) -> float | int:
    if src.nodata is None or np.isnan(src.nodata):
        return float("nan") if np.dtype(dtype).kind == "f" else 0
    return np.dtype(dtype).type(src.nodata).item()


def _fingerprint(scenes: list[SceneSource], labels: str, opts: TileOptions,
                 bands: list[int], ordered: bool) -> str:
    """What a resumed run must share with the run that started the store."""

    def stamp(path: str) -> list[Any]:
        try:
            st = os.stat(path)
            return [os.path.abspath(path), st.st_size, int(st.st_mtime)]
        except OSError:
            return [path]

    doc = {"sources": [s.fingerprint() for s in scenes], "labels": stamp(labels),
           "options": asdict(opts), "bands": bands,
           # 2: the last rows of blocks are cut smaller (blocks.TAIL_ROWS): other groups
           "pass": "one-pass-2/" + ("ordered" if ordered else "spill")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _tile(
    scenes: list[SceneSource], sources: list[RasterInfo], bands: list[int],
    band_names: list[str], labels: str | os.PathLike[str], area: PlacedArea | None,
    out: Path, opts: TileOptions,
    encoding: tuple[str, float | int, tuple[ShardLayout, ShardLayout | None]], *,
    scheduler: str | None, workers: int | None, resume: bool, quiet: bool,
    ordered: bool | None,
) -> Path:
    """:func:`tile` once the sources are open; ``encoding``: dtype, fill and layouts."""
    partial = partial_path(out)
    refs = candidate_tiles(sources, opts.tile_size, opts.step)
    if not refs:
        sizes = ", ".join(f"{sc.name} {s.width}x{s.height}" for sc, s in zip(
            scenes, sources, strict=True))
        raise InputError(f"--tile-size {opts.tile_size} is larger than every raster ({sizes}); "
                         "choose a smaller tile size")
    for sc, s in zip(scenes, sources, strict=True):
        if s.width < opts.tile_size or s.height < opts.tile_size:
            log.warning("%s: %dx%d is smaller than one tile; skipped", sc.given, s.width,
                        s.height)
    dtype, fill, layouts = encoding
    env: dict[str, Any] = {} if "GDAL_CACHEMAX" in os.environ else {
        "GDAL_CACHEMAX": CACHE_BYTES}
    # Remote scenes are opened without listing their folders (when nothing local is read).
    env.update(remote_env([f for sc in scenes for f in sc.files] + [str(labels)]))
    with rasterio.Env(**env):
        blocks = _plan(refs, sources, bands, opts)
    if ordered is None:
        ordered = scheduler is None and not borders_possible(
            refs, opts.split, opts.split_block_size) and _widest_row(blocks, sources, bands) <= \
            ORDERED_ROW_BUDGET
    fingerprint = _fingerprint(scenes, str(labels), opts, bands, ordered)
    progress = partial / PROGRESS_DIR
    fresh = not (resume and partial.exists())
    if not fresh:
        check_pending(partial, fingerprint)
        claim_store(partial)  # an older geovision's unfinished store is taken up
    else:
        if partial.exists():
            claim_store(partial)
            remove_owned(partial, kind="dir", option="--output")
        claim_store(partial)  # the mark first: the folder is geovision's before anything
        group = zarr.open_group(str(partial), mode="a", zarr_format=3)  # "w" drops the mark
        group.attrs[PENDING_ATTR] = {"fingerprint": fingerprint,
                                     "started": dt.datetime.now(dt.timezone.utc).isoformat()}
    try:
        # Labels are read and reprojected while the first blocks are decoded. The thread
        # starts once the store is set up: zarr's event loop (the layouts, the group) then
        # waits for no other thread holding the GIL.
        with ThreadPoolExecutor(1, thread_name_prefix="labels") as reader:
            labels_read = reader.submit(read_placed, labels, sources, scenes, opts, area,
                                        blocks)
            try:
                with rasterio.Env(**env):
                    return _run(sources, bands, labels_read, area, out, partial, progress,
                                blocks, refs, opts, dtype, fill, layouts, scheduler=scheduler,
                                workers=workers, quiet=quiet, ordered=ordered, scenes=scenes,
                                band_names=band_names)
            finally:
                labels_read.cancel()
    except GeovisionError:
        if fresh:  # nothing is left behind on bad input
            shutil.rmtree(partial, ignore_errors=True)
        raise


def _run(
    sources: list[RasterInfo], bands: list[int], labels_read: Future[PlacedLabels],
    area: PlacedArea | None, out: Path,
    partial: Path, progress: Path, blocks: list[Block], refs: list[TileRef],
    opts: TileOptions, dtype: str, fill: float | int,
    layouts: tuple[ShardLayout, ShardLayout | None], *, scheduler: str | None,
    workers: int | None, quiet: bool, ordered: bool, scenes: list[SceneSource],
    band_names: list[str],
) -> Path:
    progress.mkdir(parents=True, exist_ok=True)
    image, mask = layouts
    image = dataclasses.replace(image, root=partial / "image")
    mask = dataclasses.replace(mask, root=partial / "mask") if mask is not None else None
    if ordered:
        late: Any = [LateLabels(labels_read, s, opts.task) for s in range(len(sources))]
        jobs = _block_jobs(blocks, sources, bands, opts, dtype, late, None, image, mask, area)
    else:
        ready = labels_read.result()
        jobs = _block_jobs(blocks, sources, bands, opts, dtype, ready, ready.num_classes,
                           image, mask, area)

    with dask_client(scheduler, workers) as client, ExitStack() as stack:
        if ordered:
            result = ordered_pass(_groups(jobs), progress=progress, image=image, mask=mask,
                                  workers=workers or default_workers(), quiet=quiet)
            stack.callback(result.shards.close)  # its last shards are written meanwhile
            per_group = list(zip(result.tiles, result.valid, result.kept, result.figures,
                                 strict=True))
        else:
            todo = [j for j in jobs if not block_paths(progress, j.index)[1].exists()]
            run_graph([task(f"block-{j.index}", run_block, j, str(progress)) for j in todo],
                      client=client, workers=workers, desc="tiles (read)", unit="tile",
                      weights=[len(j.block.tiles) for j in todo], quiet=quiet)
            loaded = [load_block(progress, j.index) for j in jobs]
            per_group = [(t, v, k, f) for t, v, k, _, f in loaded]
        close_cached()
        placed = labels_read.result()
        final = _select(per_group, refs, opts, len(bands), placed.num_classes,
                        _class_names(placed))
        if ordered and final["border_dropped"]:
            raise RuntimeError("the ordered pass left tiles on split borders")  # a bug
        _make_arrays(partial, progress, final, sources, bands, opts, dtype, fill)
        image_f, mask_f = _same_codecs((image, mask), (
            shard_layout(partial / "image"),
            shard_layout(partial / "mask") if for_task(opts.task).stores_mask else None))
        if ordered:
            result.shards.finish(image_f, mask_f)
        else:
            spans = np.concatenate([loaded[b][3][p:p + 1] for b, p in final["where"]]) \
                if final["n"] else np.zeros((0, 4), np.uint64)
            shard_jobs = _shard_jobs(progress, final, spans, image_f, mask_f)
            todo_s = [j for j in shard_jobs
                      if not all(done_path(progress, s).exists() for s in range(*j.shards))]
            run_graph([task(f"shards-{j.shards[0]}", run_shards, j) for j in todo_s],
                      client=client, workers=workers, desc="tiles (write)", unit="tile",
                      weights=[len(j.block) for j in todo_s], quiet=quiet)

    group = open_group(partial, "r+")
    if for_task(opts.task).stores_label and final["n"]:
        group["label"][...] = final["figures"].label
    attrs, boxes = summarize(final["figures"], final["splits"], per_shard=opts.shard,
                             scenes=scenes, sources=sources, bands=bands,
                             band_names=band_names, labels=placed, opts=opts,
                             border_dropped=final["border_dropped"], ignore_index=IGNORE_INDEX)
    commit_store(partial, out, attrs, boxes)
    log.info("%s: %d tiles written", out, final["n"])
    return out


def _plan(refs: list[TileRef], sources: list[RasterInfo], bands: list[int],
          opts: TileOptions) -> list[Block]:
    storage, pixel_bytes = [], []
    for s in sources:
        with rasterio.open(s.path) as ds:
            storage.append(tuple(ds.block_shapes[0]))
        pixel_bytes.append(len(bands) * np.dtype(s.dtype).itemsize)
    return plan_blocks(refs, storage, pixel_bytes, opts.tile_size, budget=BLOCK_BUDGET)


def _widest_row(blocks: list[Block], sources: list[RasterInfo], bands: list[int]) -> int:
    """Raw bytes of the largest row of blocks (what the ordered pass may hold encoded)."""
    rows: dict[tuple[int, int], int] = {}
    for b in blocks:
        px = len(bands) * np.dtype(sources[b.source].dtype).itemsize
        key = (b.source, b.window.row)
        rows[key] = rows.get(key, 0) + b.window.height * b.window.width * px
    return max(rows.values(), default=0)


def _groups(jobs: list[BlockJob]) -> list[list[BlockJob]]:
    """Consecutive blocks of one row of blocks (same source and rows) form a group."""
    groups: list[list[BlockJob]] = []
    for job in jobs:
        key = (job.block.source, job.block.window.row)
        last = groups[-1][-1].block if groups else None
        if last is not None and (last.source, last.window.row) == key:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def _same_codecs(
    scratch: tuple[ShardLayout, ShardLayout | None], final: tuple[ShardLayout, ShardLayout | None]
) -> tuple[ShardLayout, ShardLayout | None]:
    """The final layouts, checked to encode as the scratch ones the pass used did."""
    for a, b in zip(scratch, final, strict=True):
        if (a is None) != (b is None) or (a is not None and b is not None and (
                a.dtype != b.dtype or a.item != b.item or a.root != b.root or
                [c.get_config() for c in a.encoders] != [c.get_config() for c in b.encoders])):
            raise RuntimeError("tile arrays were created with other codecs than the pass used")
    return final


def _layouts(bands: int, opts: TileOptions, dtype: str,
             fill: float | int) -> tuple[ShardLayout, ShardLayout | None]:
    """Encoding layouts of ``image`` and ``mask``, from arrays made as the store makes them.

    The final arrays can only be created once the tile count is known (after the pass); their
    codecs depend on the dtype and task alone, so arrays made in memory give the encoders now
    (``_same_codecs`` checks them against the final arrays).
    """
    group = zarr.open_group(MemoryStore(), mode="w", zarr_format=3)
    create_tile_arrays(group, n_tiles=opts.shard, bands=bands, tile_size=opts.tile_size,
                       dtype=dtype, task=opts.task, shard=opts.shard, fill_value=fill, plan={})

    def layout(name: str) -> ShardLayout:
        meta = json.loads(json.dumps(group[name].metadata.to_dict(), default=str))
        return shard_layout(Path(name), meta)

    return layout("image"), layout("mask") if for_task(opts.task).stores_mask else None


def _block_jobs(
    blocks: list[Block], sources: list[RasterInfo], bands: list[int], opts: TileOptions,
    dtype: str, labels: PlacedLabels | list[LateLabels], classes: int | None,
    image: ShardLayout, mask: ShardLayout | None, area: PlacedArea | None,
) -> list[BlockJob]:
    """One job per block; labels selected now (``PlacedLabels``) or when the block is read."""
    inside_only = not for_task(opts.task).burns
    return [
        BlockJob(
            index=i, path=absolute(sources[b.source].path),
            transform=sources[b.source].transform, block=b, bands=tuple(bands),
            size=opts.tile_size, task=opts.task, dtype=dtype, min_valid=opts.min_valid,
            ignore_index=IGNORE_INDEX, num_classes=classes or 0,
            min_box_visible=opts.min_box_visible,
            labels=(labels.select(b.source, b, opts.task) if isinstance(labels, PlacedLabels)
                    else labels[b.source]),
            image=image, mask=mask, crs=sources[b.source].crs,
            aoi=None if area is None else block_area(area.per_source[b.source], b.window,
                                                     sources[b.source].transform),
            inside_only=inside_only,
        )
        for i, b in enumerate(blocks)
    ]


def _class_names(placed: PlacedLabels) -> list[str]:
    """Class names by class id (``class N`` where the table has no name for N)."""
    by_id = {r["id"]: str(r["name"]) for r in placed.table.records()}
    return [by_id.get(i, f"class {i}") for i in range(placed.num_classes)]


def _select(per_group: list[tuple[np.ndarray, np.ndarray, np.ndarray, TileFigures]],
            refs: list[TileRef], opts: TileOptions, bands: int, classes: int,
            class_names: list[str]) -> dict[str, Any]:
    """The final tiles, in order, with their figures.

    Returns:
        ``n``, ``refs``, ``splits``, ``valid``, ``border_dropped``, ``figures`` of the final
        tiles and ``where``: (group, position among its kept tiles) of each.

    Raises:
        InputError: no tile reaches ``--min-valid``.
    """
    valid = np.ones(len(refs), dtype=np.float32)
    keep = np.zeros(len(refs), dtype=bool)  # as the blocks decided (--min-valid, --aoi)
    where = np.full((len(refs), 2), -1, dtype=np.int64)
    for i, (tiles, v, kept, _) in enumerate(per_group):
        valid[tiles] = v
        kt = tiles[kept]
        keep[kt] = True
        where[kt, 0] = i
        where[kt, 1] = np.arange(len(kt))
    if not keep.any():
        raise InputError(f"no tile has a valid fraction of at least --min-valid "
                         f"{opts.min_valid}; lower it or check the rasters' nodata")
    cand = np.flatnonzero(keep)
    figs = [fig for _, _, _, fig in per_group]
    offsets = np.cumsum([0] + [len(f) for f in figs])
    every = TileFigures.concat(figs, bands, classes)
    # the block split balances the classes over the splits (pixels, or boxes, per tile)
    splits, dropped = assign_splits([refs[c] for c in cand], method=opts.split,
                                    fractions=opts.fractions, block_size=opts.split_block_size,
                                    seed=opts.seed, class_counts=every.class_counts[
                                        offsets[where[cand, 0]] + where[cand, 1]],
                                    class_names=class_names)
    if dropped:
        log.info("%d tiles on split-block borders left out so splits share no pixel", dropped)
    cand = cand[splits != DROPPED_SPLIT]
    splits = splits[splits != DROPPED_SPLIT]
    loc = where[cand]
    figures = every.take(offsets[loc[:, 0]] + loc[:, 1])
    return {
        "n": len(cand), "refs": [refs[c] for c in cand], "splits": splits,
        "valid": valid[cand], "border_dropped": dropped, "figures": figures,
        "where": [tuple(x) for x in loc.tolist()],
    }


def _make_arrays(partial: Path, progress: Path, final: dict[str, Any],
                 sources: list[RasterInfo], bands: list[int], opts: TileOptions, dtype: str,
                 fill: float | int) -> None:
    """Create the tile arrays and write the tile plan, unless a previous run finished that.

    Shard objects already written under ``image/`` and ``mask/`` are kept.
    """
    done = progress / "arrays.done"
    if done.exists():
        return
    for name in _TILE_ARRAYS:
        meta = partial / name / "zarr.json"
        meta.unlink(missing_ok=True)
        if name not in ("image", "mask"):
            shutil.rmtree(partial / name, ignore_errors=True)
    write_tile_arrays(partial, n_tiles=final["n"], bands=len(bands), tile_size=opts.tile_size,
                      dtype=dtype, task=opts.task, shard=opts.shard, fill_value=fill,
                      plan=plan_arrays(final["refs"], sources, final["splits"],
                                       final["valid"]))
    group = open_group(partial, "r+")
    pending = dict(group.attrs[PENDING_ATTR])
    group.attrs[PENDING_ATTR] = {**pending, "border_dropped": final["border_dropped"]}
    done.write_text("ok\n")


def plan_arrays(refs: list[TileRef], sources: list[RasterInfo], splits: np.ndarray,
                valid: np.ndarray) -> dict[str, np.ndarray]:
    """The tile plan arrays (``source``, ``row``, ``col``, ``transform``, ``valid``, ``split``).

    A tile's affine is its source's composed with a translation by its origin, computed for
    all tiles at once with the arithmetic of ``Affine.__matmul__`` (so the same float64 bits):
    ``(a, b, a*col + b*row + c, d, e, d*col + e*row + f)``.
    """
    src = np.array([r.source for r in refs], dtype=np.int16)
    row = np.array([r.window.row for r in refs], dtype=np.int32)
    col = np.array([r.window.col for r in refs], dtype=np.int32)
    t = np.array([list(s.transform)[:6] for s in sources], dtype=np.float64)[src]
    a, b, c, d, e, f = t.T
    x, y = col.astype(np.float64), row.astype(np.float64)
    one, zero = 1.0, 0.0
    transform = np.stack([a * one + b * zero, a * zero + b * one, a * x + b * y + c,
                          d * one + e * zero, d * zero + e * one, d * x + e * y + f], axis=1)
    return {"source": src, "row": row, "col": col,
            "transform": transform.reshape(len(refs), 6),
            "valid": valid.astype(np.float32), "split": splits.astype(np.uint8)}


def _shard_jobs(progress: Path, final: dict[str, Any], spans: np.ndarray,
                image: ShardLayout, mask: ShardLayout | None) -> list[ShardsJob]:
    per, n = image.per_shard, final["n"]
    n_shards = -(-n // per)
    block = np.array([b for b, _ in final["where"]], dtype=np.int64)
    jobs = []
    for first_shard in range(0, n_shards, SHARDS_PER_TASK):
        last = min(first_shard + SHARDS_PER_TASK, n_shards)
        lo, hi = first_shard * per, min(last * per, n)
        jobs.append(ShardsJob(progress=str(progress.resolve()), shards=(first_shard, last),
                              first=lo, block=block[lo:hi], spans=spans[lo:hi], image=image,
                              mask=mask))
    return jobs
