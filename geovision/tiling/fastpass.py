"""``tile_fast()``: the one-pass tiling path (prototype for issue 14, same output as ``tile()``).

``tile()`` decodes every source pixel twice (a nodata scan, then the shard pass) and writes
through zarr-python. Here every pixel is decoded once and chunks are written as bytes:

1. **blocks** (:mod:`~geovision.tiling.blocks`): candidate tiles grouped into windows that
   follow the sources' storage blocks, each read once;
2. **pass** (Dask, :func:`~geovision.tiling.onepass.run_block` per block): valid fractions,
   labels burned per block (:mod:`~geovision.tiling.burn`), chunks encoded with the store's
   codecs (:mod:`~geovision.tiling.shards`) into spill files, statistics per tile;
3. **selection**: the rules of ``tile()`` on the measured fractions (``--min-valid``, splits,
   tiles on split-block borders left out) give the same tiles in the same order;
4. **arrays**: the tile arrays and the tile plan are created (``store.create_tile_arrays``);
5. **shards** (Dask, :func:`~geovision.tiling.onepass.run_shards`): each shard's chunk bytes
   copied from the spill files into one object per shard, and the classic shard markers;
6. **finish**: attributes summarized from the markers and the store completed as ``tile()``
   does.

A killed run resumes (``resume=True``): finished blocks and shards keep their markers, the
selection is recomputed from the block markers (it is deterministic), the arrays are created
again unless ``arrays.done`` says they were. Memory per task is bounded by
:data:`~geovision.tiling.blocks.BLOCK_BUDGET` and GDAL's block cache by :data:`CACHE_BYTES`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import rasterio
import zarr

from geovision.cluster import dask_client, run_graph, task
from geovision.errors import InputError, OutputExistsError
from geovision.geo.raster import RasterInfo, absolute, close_cached, find_rasters, open_raster
from geovision.geo.vector import read_labels
from geovision.tiling.api import (
    IGNORE_INDEX,
    TileOptions,
    _check_sources,
    _fill,
    _fingerprint,
    _place_labels,
    _plan_arrays,
    _summarize,
)
from geovision.tiling.blocks import BLOCK_BUDGET, plan_blocks
from geovision.tiling.burn import SourceLabels
from geovision.tiling.onepass import (
    STATS,
    BlockJob,
    ShardsJob,
    block_paths,
    run_block,
    run_shards,
)
from geovision.tiling.plan import TileRef, assign_splits, candidate_tiles
from geovision.tiling.shards import ShardLayout, shard_layout
from geovision.tiling.store import (
    PENDING_ATTR,
    check_pending,
    create_tile_arrays,
    finish_store,
    is_complete,
    open_group,
    partial_path,
)
from geovision.tiling.work import PROGRESS_DIR, marker_path

log = logging.getLogger(__name__)

#: GDAL block cache while tiling (bytes; GDAL_CACHEMAX in the environment wins). Blocks are
#: read once, so the cache only needs to hold what one read decodes; GDAL's rasterize also
#: works in strips of this many bytes, so it must hold a block's mask.
CACHE_BYTES = 64 * 2**20
#: Shards per shard task.
SHARDS_PER_TASK = 8
_TILE_ARRAYS = ("image", "mask", "label", "source", "row", "col", "transform", "valid", "split")


def tile_fast(
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
) -> Path:
    """Cut rasters and their labels into a Zarr tile dataset, equal to :func:`tile`'s.

    Arguments, result and errors are those of :func:`geovision.tiling.tile`.
    """
    opts = options or TileOptions()
    opts.check()
    out = Path(out)
    partial = partial_path(out)
    if out.exists() and not overwrite:
        if resume and is_complete(out):
            return out
        if not resume:
            raise OutputExistsError(f"{out}: exists; use --overwrite to replace it or "
                                    "--resume to finish an interrupted run")
    if partial.exists() and not (resume or overwrite):
        raise OutputExistsError(f"{partial}: an interrupted run left this; use --resume to "
                                "finish it or --overwrite to start again")
    sources = [open_raster(p) for p in find_rasters(rasters)]
    bands = _check_sources(sources, opts)
    lab = read_labels(labels, layer=opts.layer, class_field=opts.class_field)
    placed, outside = _place_labels(lab, sources)
    lab.dropped = {**lab.dropped, **({"outside_rasters": outside} if outside else {})}
    if outside:
        log.warning("%s: %d of %d features lie outside every raster and are not used",
                    lab.path, outside, lab.features)
    refs = candidate_tiles(sources, opts.tile_size, opts.step)
    if not refs:
        sizes = ", ".join(f"{Path(s.path).name} {s.width}x{s.height}" for s in sources)
        raise InputError(f"--tile-size {opts.tile_size} is larger than every raster ({sizes}); "
                         "choose a smaller tile size")
    for s in sources:
        if s.width < opts.tile_size or s.height < opts.tile_size:
            log.warning("%s: %dx%d is smaller than one tile; skipped", s.path, s.width, s.height)
    fingerprint = hashlib.sha256(
        (_fingerprint(sources, lab, opts, bands) + "/one-pass-1").encode()).hexdigest()
    dtype = str(np.result_type(*[np.dtype(s.dtype) for s in sources]))
    fill = _fill(sources[0], dtype)
    progress = partial / PROGRESS_DIR

    if resume and partial.exists():
        check_pending(partial, fingerprint)
    else:
        if partial.exists():
            shutil.rmtree(partial)
        group = zarr.open_group(str(partial), mode="w", zarr_format=3)
        group.attrs[PENDING_ATTR] = {"fingerprint": fingerprint,
                                     "started": dt.datetime.now(dt.timezone.utc).isoformat()}
    image, mask = _layouts(progress, len(bands), opts, dtype, fill)

    cache = {} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": CACHE_BYTES}
    with rasterio.Env(**cache), dask_client(scheduler, workers) as client:
        jobs = _block_jobs(progress, refs, sources, bands, opts, dtype, lab, placed, image,
                           mask)
        todo = [j for j in jobs if not block_paths(progress, j.index)[1].exists()]
        run_graph([task(f"block-{j.index}", run_block, j) for j in todo], client=client,
                  workers=workers, desc="tiles (read)", unit="tile",
                  weights=[len(j.block.tiles) for j in todo], quiet=quiet)
        close_cached()
        try:
            final = _select(progress, len(jobs), refs, opts)
        except InputError:
            shutil.rmtree(partial, ignore_errors=True)  # as tile(): nothing left on bad input
            raise
        _make_arrays(partial, progress, final, sources, bands, opts, dtype, fill)
        image, mask = _same_codecs((image, mask), (
            shard_layout(partial / "image"),
            shard_layout(partial / "mask") if opts.task == "segmentation" else None))
        shard_jobs = _shard_jobs(partial, progress, final, opts, image, mask)
        todo_s = [j for j in shard_jobs
                  if not all(marker_path(partial, s).exists() for s in range(*j.shards))]
        run_graph([task(f"shards-{j.shards[0]}", run_shards, j) for j in todo_s],
                  client=client, workers=workers, desc="tiles (write)", unit="tile",
                  weights=[len(j.block) for j in todo_s], quiet=quiet)

    group = open_group(partial, "r+")
    if opts.task == "classification" and final["n"]:
        group["label"][...] = final["labels"]
    n_shards = -(-final["n"] // opts.shard)
    jobs_like = cast(Any, [SimpleNamespace(index=i) for i in range(n_shards)])
    attrs, boxes = _summarize(partial, jobs_like, sources, bands, lab, opts, final["splits"],
                              final["border_dropped"])
    finish_store(partial, out, attrs, boxes)
    log.info("%s: %d tiles written", out, final["n"])
    return out


def _same_codecs(
    scratch: tuple[ShardLayout, ShardLayout | None], final: tuple[ShardLayout, ShardLayout | None]
) -> tuple[ShardLayout, ShardLayout | None]:
    """The final layouts, checked to encode as the scratch ones the pass used did."""
    for a, b in zip(scratch, final, strict=True):
        if (a is None) != (b is None) or (a is not None and b is not None and (
                a.dtype != b.dtype or a.item != b.item or
                [c.get_config() for c in a.encoders] != [c.get_config() for c in b.encoders])):
            raise RuntimeError("tile arrays were created with other codecs than the pass used")
    return final


def _layouts(progress: Path, bands: int, opts: TileOptions, dtype: str,
             fill: float | int) -> tuple[ShardLayout, ShardLayout | None]:
    """Encoding layouts of ``image`` and ``mask``, from arrays made as the store makes them.

    The final arrays can only be created once the tile count is known (after the pass); their
    codecs depend on the dtype and task alone, so a scratch group gives the encoders now.
    """
    scratch = progress / "layout.zarr"
    group = zarr.open_group(str(scratch), mode="w", zarr_format=3)
    create_tile_arrays(group, n_tiles=opts.shard, bands=bands, size=opts.tile_size,
                       dtype=dtype, task=opts.task, shard=opts.shard, fill_value=fill, plan={})
    return (shard_layout(scratch / "image"),
            shard_layout(scratch / "mask") if opts.task == "segmentation" else None)


def _block_jobs(
    progress: Path, refs: list[TileRef], sources: list[RasterInfo], bands: list[int],
    opts: TileOptions, dtype: str, lab: Any, placed: list[tuple[np.ndarray, np.ndarray, Any]],
    image: ShardLayout, mask: ShardLayout | None,
) -> list[BlockJob]:
    storage, pixel_bytes = [], []
    for s in sources:
        with rasterio.open(s.path) as ds:
            storage.append(tuple(ds.block_shapes[0]))
        pixel_bytes.append(len(bands) * np.dtype(s.dtype).itemsize)
    blocks = plan_blocks(refs, storage, pixel_bytes, opts.tile_size, budget=BLOCK_BUDGET)
    per_source = [SourceLabels(geoms, ids, s.transform)
                  for (geoms, ids, _), s in zip(placed, sources, strict=True)]
    burn_shapes = opts.task != "detection"
    return [
        BlockJob(
            progress=str(progress.resolve()), index=i, path=absolute(sources[b.source].path),
            transform=sources[b.source].transform, block=b, bands=tuple(bands),
            size=opts.tile_size, task=opts.task, dtype=dtype, min_valid=opts.min_valid,
            ignore_index=IGNORE_INDEX, num_classes=len(lab.classes),
            min_box_visible=opts.min_box_visible,
            labels=per_source[b.source].select(b.window, shapes=burn_shapes),
            image=image, mask=mask,
        )
        for i, b in enumerate(blocks)
    ]


def _select(progress: Path, n_blocks: int, refs: list[TileRef], opts: TileOptions
            ) -> dict[str, Any]:
    """The final tiles, in order, with where their chunks and figures lie (``tile()``'s rules).

    Raises:
        InputError: no tile reaches ``--min-valid``.
    """
    valid = np.ones(len(refs), dtype=np.float32)
    where = np.full((len(refs), 2), -1, dtype=np.int64)  # (block, kept position) per candidate
    per_block: list[dict[str, np.ndarray]] = []
    for i in range(n_blocks):
        with np.load(block_paths(progress, i)[1]) as m:
            arrays = {k: m[k] for k in m.files}
        per_block.append(arrays)
        valid[arrays["tiles"]] = arrays["valid"]
        kept = arrays["tiles"][arrays["kept"]]
        where[kept, 0] = i
        where[kept, 1] = np.arange(len(kept))
    keep = (valid >= opts.min_valid) & (valid > 0)
    if not keep.any():
        raise InputError(f"no tile has a valid fraction of at least --min-valid "
                         f"{opts.min_valid}; lower it or check the rasters' nodata")
    cand = np.flatnonzero(keep)
    splits, dropped = assign_splits([refs[c] for c in cand], method=opts.split,
                                    fractions=opts.fractions, block_size=opts.blocks,
                                    seed=opts.seed)
    if dropped:
        log.info("%d tiles on split-block borders left out so splits share no pixel", dropped)
    cand = cand[splits != 255]
    splits = splits[splits != 255]
    blk, pos = where[cand, 0], where[cand, 1]
    box_start = [np.concatenate([[0], np.cumsum(a["n_boxes"])]) for a in per_block]

    def gather(name: str) -> np.ndarray:
        if not len(cand):
            return np.zeros((0,), dtype=np.float64)
        return np.stack([per_block[b][name][p] for b, p in zip(blk, pos, strict=True)])

    boxes: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    if opts.task == "detection":
        boxes = tuple(
            (per_block[b]["boxes"][box_start[b][p]:box_start[b][p + 1]],
             per_block[b]["box_label"][box_start[b][p]:box_start[b][p + 1]])
            for b, p in zip(blk, pos, strict=True))
    return {
        "n": len(cand), "refs": [refs[c] for c in cand], "splits": splits,
        "valid": valid[cand], "border_dropped": dropped, "block": blk,
        "spans": gather("spans"), "stats": {k: gather(f"stats_{k}") for k in STATS},
        "class_counts": gather("class_counts"), "labels": gather("label").astype(np.int16),
        "boxes": boxes,
    }


def _make_arrays(partial: Path, progress: Path, final: dict[str, Any],
                 sources: list[RasterInfo], bands: list[int], opts: TileOptions, dtype: str,
                 fill: float | int) -> None:
    """Create the tile arrays and write the tile plan, unless a previous run finished that."""
    done = progress / "arrays.done"
    if done.exists():
        return
    for name in _TILE_ARRAYS:
        shutil.rmtree(partial / name, ignore_errors=True)
    group = open_group(partial, "r+")
    create_tile_arrays(group, n_tiles=final["n"], bands=len(bands), size=opts.tile_size,
                       dtype=dtype, task=opts.task, shard=opts.shard, fill_value=fill,
                       plan=_plan_arrays(final["refs"], sources, final["splits"],
                                         final["valid"]))
    pending = dict(group.attrs[PENDING_ATTR])
    group.attrs[PENDING_ATTR] = {**pending, "border_dropped": final["border_dropped"]}
    done.write_text("ok\n")


def _shard_jobs(partial: Path, progress: Path, final: dict[str, Any], opts: TileOptions,
                image: ShardLayout, mask: ShardLayout | None) -> list[ShardsJob]:
    per, n = image.per_shard, final["n"]
    n_shards = -(-n // per)
    jobs = []
    for first_shard in range(0, n_shards, SHARDS_PER_TASK):
        last = min(first_shard + SHARDS_PER_TASK, n_shards)
        lo, hi = first_shard * per, min(last * per, n)
        jobs.append(ShardsJob(
            store=str(partial.resolve()), progress=str(progress.resolve()),
            shards=(first_shard, last), first=lo, block=final["block"][lo:hi],
            spans=final["spans"][lo:hi], splits=final["splits"][lo:hi],
            stats={k: v[lo:hi] for k, v in final["stats"].items()},
            class_counts=final["class_counts"][lo:hi], labels=final["labels"][lo:hi],
            boxes=final["boxes"][lo:hi], task=opts.task, image=image, mask=mask,
        ))
    return jobs
