"""``tile()``: the library function behind ``geovision tile``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely

from geovision.cluster import dask_client, run_graph, task
from geovision.errors import InputError, OutputExistsError
from geovision.formats import IGNORE_INDEX, SPLITS
from geovision.geo.paths import remote_env
from geovision.geo.raster import RasterInfo, absolute, close_cached, open_raster
from geovision.geo.scenes import SceneSource, scenes_for
from geovision.geo.vector import Labels, read_labels, to_crs
from geovision.geo.windows import PixelWindow, window_bounds
from geovision.options.tile import TileOptions
from geovision.tiling.plan import (
    DROPPED_SPLIT,
    TileRef,
    assign_splits,
    candidate_tiles,
    row_runs,
    run_window,
    valid_fraction_tasks,
)
from geovision.tiling.stats import BandStats
from geovision.tiling.store import (
    check_pending,
    commit_store,
    create_store,
    is_complete,
    open_group,
    partial_path,
)
from geovision.tiling.tasks import for_task
from geovision.tiling.work import ShardWork, SourceFeatures, build_shard, marker_path

log = logging.getLogger(__name__)

#: GDAL block cache (MB) while tiling, unless GDAL_CACHEMAX is set.
GDAL_CACHE_MB = 512


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
) -> Path:
    """Cut rasters and their vector labels into a Zarr tile dataset.

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

    Returns:
        The path of the finished store.

    Raises:
        GeovisionError: bad input, with a message naming the file or option (nothing written).
    """
    opts = options or TileOptions()
    opts.check()
    out = Path(out)
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

    scenes = scenes_for(rasters, opts)
    sources = [open_raster(s.path) for s in scenes]
    bands, band_names = _check_scenes(scenes, opts)
    lab = read_labels(labels, layer=opts.layer, class_field=opts.class_field)
    per_source, outside = _place_labels(lab, sources, scenes)
    lab.dropped = {**lab.dropped, **({"outside_rasters": outside} if outside else {})}
    if outside:
        log.warning("%s: %d of %d features lie outside every raster and are not used",
                    lab.path, outside, lab.features)
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
    fingerprint = _fingerprint(scenes, lab, opts, bands)
    dtype = str(np.result_type(*[np.dtype(s.dtype) for s in sources]))

    # Tasks of one thread share its open datasets, so the scan's decoded blocks serve the
    # shard pass from GDAL's block cache; cap that cache so memory stays bounded for rasters
    # larger than it (they are then decoded twice). GDAL_CACHEMAX in the environment wins.
    # rasterio passes an integer GDAL_CACHEMAX to GDALSetCacheMax64, which counts bytes.
    cache: dict[str, Any] = {} if "GDAL_CACHEMAX" in os.environ else {
        "GDAL_CACHEMAX": GDAL_CACHE_MB * 2**20}
    # Remote scenes are opened without listing their folders (when nothing local is read).
    cache.update(remote_env([f for sc in scenes for f in sc.files] + [str(labels)]))
    with rasterio.Env(**cache), dask_client(scheduler, workers) as client:
        if resume and partial.exists():
            check_pending(partial, fingerprint)
            group = open_group(partial)
            rows, cols = group["row"][:], group["col"][:]
            refs = _refs_from_plan(group["source"][:], rows, cols, opts.tile_size)
            splits = group["split"][:]
            valid = group["valid"][:]
            border_dropped = int(group.attrs["geovision_pending"].get("border_dropped", 0))
            log.info("%s: resuming", partial)
        else:
            refs, splits, valid, border_dropped = _plan(
                refs, sources, bands, opts, client=client, workers=workers, quiet=quiet)
            if overwrite and partial.exists():
                shutil.rmtree(partial)
            create_store(
                partial, n_tiles=len(refs), bands=len(bands), tile_size=opts.tile_size,
                dtype=dtype, task=opts.task, shard=opts.shard,
                fill_value=_fill(sources[0], dtype), plan=_plan_arrays(refs, sources, splits,
                                                                       valid),
                pending={"fingerprint": fingerprint, "border_dropped": border_dropped,
                         "started": dt.datetime.now(dt.timezone.utc).isoformat()},
            )
        shards = _shard_work(partial, refs, splits, sources, bands, opts, dtype, lab,
                             per_source)
        todo = [w for w in shards if not marker_path(partial, w.index).exists()]
        if len(todo) < len(shards):
            log.info("%d of %d shards done already", len(shards) - len(todo), len(shards))
        tasks = [task(f"shard-{w.index}", build_shard, w) for w in todo]
        run_graph(tasks, client=client, workers=workers, desc="tiles", unit="tile",
                  weights=[len(w.tiles) for w in todo], quiet=quiet)

    close_cached()
    attrs, boxes = _summarize(partial, shards, scenes, sources, bands, band_names, lab, opts,
                              splits, border_dropped)
    commit_store(partial, out, attrs, boxes)
    log.info("%s: %d tiles written", out, len(refs))
    return out


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


def _place_labels(
    lab: Labels, sources: list[RasterInfo], scenes: list[SceneSource]
) -> tuple[list[tuple[np.ndarray, np.ndarray, shapely.STRtree]], int]:
    """Reproject labels to each source's CRS; count the features that touch no source.

    Raises:
        InputError: no feature touches any raster.
    """
    placed = []
    touches = np.zeros(len(lab.frame), dtype=bool)
    for s in sources:
        local = to_crs(lab.frame, s.crs)
        geoms = np.asarray(local.geometry.values)
        hit = shapely.intersects(geoms, shapely.box(*s.bounds))
        touches |= hit
        placed.append((geoms, lab.frame["class_id"].to_numpy(np.int16), shapely.STRtree(geoms)))
    if not touches.any():
        lb = lab.frame.total_bounds
        extents = "; ".join(
            f"{sc.name} {tuple(round(v, 4) for v in s.bounds)} in "
            f"{s.crs.to_string()}" for sc, s in zip(scenes, sources, strict=True))
        raise InputError(
            f"{lab.path}: no label feature overlaps any raster (labels span "
            f"{tuple(round(float(v), 4) for v in lb)} in {lab.frame.crs.to_string()}; rasters: "
            f"{extents}); check the files and their CRSs"
        )
    return placed, int((~touches).sum())


def _plan(
    refs: list[TileRef], sources: list[RasterInfo], bands: list[int], opts: TileOptions, *,
    client: Any, workers: int | None, quiet: bool,
) -> tuple[list[TileRef], np.ndarray, np.ndarray, int]:
    """Measure valid fractions, drop mostly-nodata tiles, assign splits."""
    valid = np.ones(len(refs), dtype=np.float32)
    tasks, runs, weights = valid_fraction_tasks(sources, bands, refs)
    fractions = run_graph(tasks, client=client, workers=workers, desc="nodata scan",
                          unit="tile", weights=weights, quiet=quiet)
    for run, values in zip(runs, fractions, strict=True):
        valid[run] = values
    keep = (valid >= opts.min_valid) & (valid > 0)
    if not keep.any():
        raise InputError(f"no tile has a valid fraction of at least --min-valid "
                         f"{opts.min_valid}; lower it or check the rasters' nodata")
    refs = [r for r, k in zip(refs, keep, strict=True) if k]
    valid = valid[keep]
    splits, dropped = assign_splits(refs, method=opts.split, fractions=opts.fractions,
                                    block_size=opts.split_block_size, seed=opts.seed)
    kept = splits != DROPPED_SPLIT
    if dropped:
        log.info("%d tiles on split-block borders left out so splits share no pixel", dropped)
    return [r for r, k in zip(refs, kept, strict=True) if k], splits[kept], valid[kept], dropped


def _plan_arrays(
    refs: list[TileRef], sources: list[RasterInfo], splits: np.ndarray, valid: np.ndarray
) -> dict[str, np.ndarray]:
    return {
        "source": np.array([r.source for r in refs], dtype=np.int16),
        "row": np.array([r.window.row for r in refs], dtype=np.int32),
        "col": np.array([r.window.col for r in refs], dtype=np.int32),
        "transform": np.array(
            [list(r.window.transform(sources[r.source].transform))[:6] for r in refs],
            dtype=np.float64).reshape(len(refs), 6),
        "valid": valid.astype(np.float32),
        "split": splits.astype(np.uint8),
    }


def _refs_from_plan(src: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    size: int) -> list[TileRef]:
    return [TileRef(int(s), PixelWindow(int(r), int(c), size, size))
            for s, r, c in zip(src, rows, cols, strict=True)]


def _shard_work(
    partial: Path, refs: list[TileRef], splits: np.ndarray, sources: list[RasterInfo],
    bands: list[int], opts: TileOptions, dtype: str, lab: Labels,
    per_source: list[tuple[np.ndarray, np.ndarray, shapely.STRtree]],
) -> list[ShardWork]:
    shards = []
    burn = for_task(opts.task).burns
    interfaces = [np.empty(len(geoms), dtype=object) for geoms, _, _ in per_source]
    for index, start in enumerate(range(0, len(refs), opts.shard)):
        tiles = tuple(refs[start:start + opts.shard])
        hits_by_source: dict[int, np.ndarray] = {}
        for run in row_runs(tiles, max_run=len(tiles)):
            src = tiles[run[0]].source
            span = run_window(tiles, run)
            hits = per_source[src][2].query(
                shapely.box(*window_bounds(span, sources[src].transform)))
            hits_by_source[src] = np.union1d(hits_by_source.get(src, hits), hits)
        features = {
            src: _features(per_source[src][0], per_source[src][1], hits, sources[src],
                           interfaces[src] if burn else None)
            for src, hits in hits_by_source.items()
        }
        shards.append(ShardWork(
            store=str(partial.resolve()), index=index, start=start, tiles=tiles,
            splits=splits[start:start + opts.shard],
            paths=tuple(absolute(s.path) for s in sources),
            transforms=tuple(s.transform for s in sources), bands=tuple(bands),
            dtype=dtype, num_classes=len(lab.classes), options=opts, features=features,
        ))
    return shards


def _features(geoms: np.ndarray, class_ids: np.ndarray, idx: np.ndarray,
              src: RasterInfo, interfaces: np.ndarray | None) -> SourceFeatures:
    """The features ``idx`` of a source, with their GeoJSON mappings (memoized) and boxes."""
    picked = geoms[idx]
    shapes = np.empty(0, dtype=object)
    if interfaces is not None:
        for i in idx:
            if interfaces[i] is None:
                interfaces[i] = geoms[i].__geo_interface__
        shapes = interfaces[idx]
    bounds = shapely.bounds(picked).reshape(-1, 4) if len(picked) else np.zeros((0, 4))
    inv = ~src.transform
    c0, r0 = inv @ (bounds[:, 0], bounds[:, 1])
    c1, r1 = inv @ (bounds[:, 2], bounds[:, 3])
    pixel = np.stack([np.minimum(c0, c1), np.minimum(r0, r1),
                      np.maximum(c0, c1), np.maximum(r0, r1)], axis=1)
    return SourceFeatures(shapes=shapes, class_ids=class_ids[idx], pixel_boxes=pixel)


def _fill(src: RasterInfo, dtype: str) -> float | int:
    if src.nodata is None or np.isnan(src.nodata):
        return float("nan") if np.dtype(dtype).kind == "f" else 0
    return np.dtype(dtype).type(src.nodata).item()


def _fingerprint(scenes: list[SceneSource], lab: Labels, opts: TileOptions,
                 bands: list[int]) -> str:
    def stamp(path: str) -> list[Any]:
        try:
            st = os.stat(path)
            return [os.path.abspath(path), st.st_size, int(st.st_mtime)]
        except OSError:
            return [path]

    doc = {"sources": [s.fingerprint() for s in scenes], "labels": stamp(lab.path),
           "options": asdict(opts), "bands": bands}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _summarize(
    partial: Path, shards: list[ShardWork], scenes: list[SceneSource],
    sources: list[RasterInfo], bands: list[int], band_names: list[str], lab: Labels,
    opts: TileOptions, splits: np.ndarray, border_dropped: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Merge the shards' markers (in shard order) into the root attributes and box arrays."""
    labelling = for_task(opts.task)
    stats = BandStats.empty(len(bands))
    k1 = len(lab.classes)
    pixels = np.zeros(k1, dtype=np.int64)
    tiles_per_class = np.zeros(k1, dtype=np.int64)
    boxes, box_label, box_tile = [], [], []
    for shard in shards:
        with np.load(marker_path(partial, shard.index)) as m:
            stats = stats.merge(BandStats.from_arrays(
                {k[6:]: m[k] for k in m.files if k.startswith("stats_")}))
            pixels += m["class_pixels"]
            tiles_per_class += m["class_tiles"]
            boxes.append(m["boxes"])
            box_label.append(m["box_label"])
            box_tile.append(m["box_tile"])
    if stats.count.max(initial=0) == 0:
        log.warning("no train tile has valid pixels; stats are empty")
    attrs: dict[str, Any] = {
        "task": opts.task,
        "classes": lab.classes,
        "ignore_index": IGNORE_INDEX,
        "bands": [{"index": b, "name": n, "dtype": sources[0].dtype}
                  for b, n in zip(bands, band_names, strict=True)],
        "tile_size": opts.tile_size,
        "stride": opts.step,
        "sources": [{**s.describe(), **sc.describe()} for sc, s in zip(scenes, sources,
                                                                        strict=True)],
        "labels": lab.describe(),
        "stats": stats.describe(),
        "split": {
            "method": opts.split,
            "block_size": opts.split_block_size if opts.split == "block" else None,
            "fractions": list(opts.fractions), "seed": opts.seed,
            "border_dropped": border_dropped,
        },
        "counts": {
            "tiles": {name: int((splits == i).sum()) for i, name in
                      enumerate(SPLITS)},
            "class_tiles": tiles_per_class.tolist(),
            f"class_{labelling.counted}": pixels.tolist(),
        },
        "options": {"min_valid": opts.min_valid, "min_box_visible": opts.min_box_visible},
    }
    return attrs, labelling.box_arrays(boxes, box_label, box_tile)
